"""When two same-type entities with one name are two things: their facts disagree.

Two entities *disagree* when, for some functional relation of the ontology (at most one tail
per head, e.g. a release year or a birth date), both have a value and no value of one equals a
value of the other (tails compared by normalised label). Facts come from the seed KG's triples
and from an item entity's catalog attributes. Entities without such facts never disagree."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kgenrich.kg.ids import normalize_label
from kgenrich.kg.records import Entity, Ontology, Triple

#: entity id -> functional relation -> the normalised labels of its tails
Facts = dict[str, dict[str, set[str]]]


def functional_facts(
    entities: Iterable[Entity], triples: Iterable[Triple], *, ontology: Ontology
) -> Facts:
    """The functional-relation values of every entity, from `triples` and item attributes."""
    functional = {r.name for r in ontology.relations if r.functional}
    if not functional:
        return {}
    entities = list(entities)
    labels = {e.id: e.label for e in entities}
    facts: Facts = {}
    for t in triples:
        if t.relation in functional:
            tail = labels.get(t.tail, t.tail.split("/", 1)[-1])
            facts.setdefault(t.head, {}).setdefault(t.relation, set()).add(normalize_label(tail))
    for e in entities:
        for rel, values in e.attributes.items():
            if rel in functional:
                facts.setdefault(e.id, {}).setdefault(rel, set()).update(
                    normalize_label(v) for v in values if v.strip())
    return facts


def disagreement(
    a: Mapping[str, set[str]] | None, b: Mapping[str, set[str]] | None
) -> str | None:
    """The first functional relation on which `a` and `b` disagree, as "rel: x vs y", or None."""
    if not a or not b:
        return None
    for rel in sorted(set(a) & set(b)):
        if a[rel] and b[rel] and not a[rel] & b[rel]:
            return f"{rel}: {', '.join(sorted(a[rel]))} vs {', '.join(sorted(b[rel]))}"
    return None
