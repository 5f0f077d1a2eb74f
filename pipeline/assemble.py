"""Pure glue between stages: entity bookkeeping, gap facts for prompts, trusted-graph views."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from kgenrich.kg.records import TRUSTED_SOURCES, Decision, Entity, Item, Mention, Triple
from kgenrich.pipeline.resolve import EntityIndex, resolve


def labels_by_type(index: EntityIndex) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in index.by_id.values():
        out.setdefault(e.type, []).append(e.label)
    return {k: sorted(set(v)) for k, v in out.items()}


def item_facts(
    items: Sequence[Item], *, triples: Iterable[Triple], labels: Mapping[str, str],
    item_entity: Mapping[str, str], limit: int = 12,
) -> dict[str, list[tuple[str, str]]]:
    """Per item, up to `limit` known (relation, tail label) pairs to show in completion prompts."""
    by_head: dict[str, list[tuple[str, str]]] = {}
    for t in triples:
        facts = by_head.setdefault(t.head, [])
        if len(facts) < limit:
            facts.append((t.relation, labels.get(t.tail, t.tail)))
    return {it.id: by_head.get(item_entity[it.id], []) for it in items}


def register_mentions(mentions: Iterable[Mention], *, index: EntityIndex) -> list[Entity]:
    """Resolve discovered mentions into the index; returns the entities minted."""
    from kgenrich.kg.records import SourceKind

    minted: list[Entity] = []
    for m in mentions:
        res = resolve(m.label, m.type, index=index, source=SourceKind.EXTRACTED)
        if res.is_new:
            minted.append(res.entity)
    return minted


def trusted(triples: Iterable[Triple]) -> list[Triple]:
    return [t for t in triples if t.provenance.source in TRUSTED_SOURCES]


def exported(triples: Iterable[Triple], *, include: Iterable[str]) -> list[Triple]:
    """Triples whose decision is in `include` (decision values, e.g. "trusted", "accepted")."""
    wanted = {Decision(x) for x in include}
    return [t for t in triples if t.provenance.decision in wanted]
