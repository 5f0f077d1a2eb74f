"""Write the graph as Turtle or N-Quads with provenance and scores, re-parseable by rdflib.

Design (what a SPARQL user sees):
- Entities: `<base><percent-encoded id>` with `rdf:type` (`kgt:<Type>`, or `kge:Thing`),
  `rdfs:label`, `skos:altLabel` per alias, `kge:entityId` (the kgenrich id), `kge:itemId` on
  catalog items and `kge:source`. Item entities keep the catalog's other fields: one
  `kge:catalogText [kge:fieldName <column>; kge:fieldValue <text>]` per free-text column and one
  `kge:catalogAttribute [kge:fieldName <relation>; kge:fieldValue <value>]` per attribute value.
- Facts: only triples whose decision is in `fact_decisions` (default: "trusted" and
  "accepted", settings `export.assert_decisions`) are asserted as plain triples
  `<head> kgr:<relation> <tail>`. In N-Quads each sits in one named graph per source,
  `<base>graph/seed`, `/catalog`, `/extracted`, `/completed`, so LLM-added facts can be kept
  apart from seed ones (`FROM NAMED` / `GRAPH ?g`), or dropped by graph.
- Statements: every triple, asserted or not, also gets a reified node `<base>stmt/<hash>`
  (`a rdf:Statement; rdf:subject/predicate/object`) carrying its provenance: `kge:source`,
  `kge:decision`, `kge:itemId`, `kge:model`, `kge:promptVersion`, `kge:evidence`,
  `kge:reason`, `kge:acceptedBy`, scores as `xsd:double` (`kge:confidence`, `kge:kgeScore`,
  `kge:kgeProbability`, `kge:agreement`; other names as `kge:score [kge:scoreName;
  kge:scoreValue]`) and, on asserted ones, `kge:graph` naming the graph the fact is in.
- Candidates (triples not asserted: review, unverified_new_entity, rejected, pending by default)
  exist only as statements, never as plain triples, so a reader that ignores reification never
  takes them for facts. In N-Quads their statements live in the named graph
  `<base>graph/candidates`; entity descriptions and the asserted facts' statements are in the
  default graph. Turtle, which has no graphs, holds the union of the N-Quads graphs.

Filter by source and confidence:
    SELECT ?h ?t WHERE {
      ?s rdf:subject ?h ; rdf:predicate kgr:directed_by ; rdf:object ?t ;
         kge:source "completed" ; kge:confidence ?c ; kge:graph ?g .
      FILTER(?c >= 0.8)
      GRAPH ?g { ?h kgr:directed_by ?t }
    }

Output is written line by line (terms escaped here, as in N-Triples) rather than through
rdflib's serializers, which take minutes on a few hundred thousand triples.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO

from rdflib import RDF, RDFS, XSD, URIRef
from rdflib.namespace import SKOS

from kgenrich.errors import ExportError
from kgenrich.kg.atomic import atomic_write
from kgenrich.kg.export._common import entity_index, item_id_of, referenced_ids
from kgenrich.kg.export.select import DEFAULT_FACT_DECISIONS
from kgenrich.kg.namespace import (
    CANDIDATES,
    KGN,
    KGN_IRI,
    KGR,
    KGT,
    RESERVED_PREFIXES,
    SCORE_TERMS,
    check_base,
    encode_id,
    graph_iri,
    relation_iri,
    type_iri,
)
from kgenrich.kg.records import Decision, Entity, SourceKind, Triple

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_FACT_DECISIONS", "candidates_graph", "graph_names", "literal", "write_nquads",
           "write_turtle"]


# N-Triples / Turtle string escapes: quotes, backslash and every control character, so a literal
# never spans lines and never carries a raw byte a parser might refuse.
_ESCAPES: dict[int, str] = {i: f"\\u{i:04X}" for i in (*range(0x20), 0x7F)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r"})
_ESCAPES[ord("\t")] = "\\t"
# Local names we write as prefixed names in Turtle; anything else is written as a full IRI.
_PLAIN_LOCAL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PREFIXES = {
    "rdf": str(RDF),
    "rdfs": str(RDFS),
    "xsd": str(XSD),
    "skos": str(SKOS),
    "kge": KGN_IRI,
    "kgr": str(KGR),
    "kgt": str(KGT),
}
_Pairs = list[tuple[str, str]]


def literal(text: str) -> str:
    """A plain string literal in N-Triples/Turtle syntax."""
    return '"' + text.translate(_ESCAPES) + '"'


def _double_lexical(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    return repr(float(value))


_VOCAB: dict[str, str] = {
    "type": str(RDF.type),
    "label": str(RDFS.label),
    "altLabel": str(SKOS.altLabel),
    "Statement": str(RDF.Statement),
    "subject": str(RDF.subject),
    "predicate": str(RDF.predicate),
    "object": str(RDF.object),
    **{name: KGN_IRI + name for name in KGN.__annotations__},
}


class _Syntax:
    """Renders terms either as full IRIs (N-Quads) or with prefixes (Turtle), with caches:
    the same few thousand terms are rendered millions of times."""

    def __init__(self, *, prefixed: bool, base: str) -> None:
        self.prefixed = prefixed
        self.base = base
        self.double_type = "xsd:double" if prefixed else f"<{XSD.double}>"
        self._iris: dict[str, str] = {}
        self._entities: dict[str, str] = {}
        self._relations: dict[str, str] = {}
        self.v = {name: self.iri(iri) for name, iri in _VOCAB.items()}
        self.graphs = {k.value: self.iri(graph_iri(base, k.value)) for k in SourceKind}
        self.candidates = self.iri(graph_iri(base, CANDIDATES))

    def iri(self, iri: str) -> str:
        cached = self._iris.get(iri)
        if cached is not None:
            return cached
        out = f"<{iri}>"
        if self.prefixed:
            for prefix, ns in _PREFIXES.items():
                if iri.startswith(ns) and _PLAIN_LOCAL.match(iri[len(ns) :]):
                    out = f"{prefix}:{iri[len(ns) :]}"
                    break
        self._iris[iri] = out
        return out

    def entity(self, entity_id: str) -> str:
        cached = self._entities.get(entity_id)
        if cached is None:
            cached = self._entities[entity_id] = f"<{self.base}{encode_id(entity_id)}>"
        return cached

    def relation(self, name: str) -> str:
        cached = self._relations.get(name)
        if cached is None:
            cached = self._relations[name] = self.iri(relation_iri(name))
        return cached

    def double(self, value: float) -> str:
        return f'"{_double_lexical(value)}"^^{self.double_type}'


def _statement_iri(base: str, t: Triple) -> str:
    p = t.provenance
    key = "\x1f".join(
        (
            t.head,
            t.relation,
            t.tail,
            p.source.value,
            p.item_id or "",
            p.model or "",
            p.prompt_version or "",
            p.evidence or "",
        )
    )
    return f"{base}stmt/{hashlib.sha1(key.encode('utf-8', 'surrogatepass')).hexdigest()[:24]}"


def _entity_pairs(
    entity: Entity | None, entity_id: str, s: _Syntax
) -> tuple[_Pairs, list[tuple[str, _Pairs]]]:
    """The entity's properties and, for catalog fields, (blank node label, properties)."""
    v = s.v
    pairs: _Pairs = []
    extra: list[tuple[str, _Pairs]] = []
    if entity is not None:
        pairs.append((v["type"], s.iri(type_iri(entity.type))))
        pairs.append((v["label"], literal(entity.label)))
        pairs.extend((v["altLabel"], literal(a)) for a in entity.aliases)
    pairs.append((v["entityId"], literal(entity_id)))
    item = item_id_of(entity_id)
    if item is not None:
        pairs.append((v["itemId"], literal(item)))
    if entity is not None:
        pairs.append((v["source"], literal(entity.source.value)))
        fields = [("catalogText", name, text) for name, text in entity.text.items()]
        fields += [
            ("catalogAttribute", name, value)
            for name, values in entity.attributes.items()
            for value in values
        ]
        if fields:
            # Blank node labels must be unique in the document (and stable, for the store's
            # idempotent reloads): derive them from the entity id.
            key = hashlib.sha1(entity_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]
            for n, (term, name, value) in enumerate(fields):
                bnode = f"_:e{key}x{n}"
                pairs.append((v[term], bnode))
                extra.append((bnode, [(v["fieldName"], literal(name)),
                                      (v["fieldValue"], literal(value))]))
    return pairs, extra


_OPTIONAL = (
    ("itemId", "item_id"),
    ("model", "model"),
    ("promptVersion", "prompt_version"),
    ("evidence", "evidence"),
    ("reason", "reason"),
    ("acceptedBy", "accepted_by"),
)
_SCORE_NAMES = {key: term[len(KGN_IRI) :] for key, term in SCORE_TERMS.items()}


def _statement_pairs(
    t: Triple, *, stmt: str, asserted: bool, s: _Syntax
) -> tuple[_Pairs, list[tuple[str, _Pairs]]]:
    """The statement's properties and, for extra scores, (blank node label, properties)."""
    p = t.provenance
    v = s.v
    source = p.source.value
    pairs: _Pairs = [
        (v["type"], v["Statement"]),
        (v["subject"], s.entity(t.head)),
        (v["predicate"], s.relation(t.relation)),
        (v["object"], s.entity(t.tail)),
        (v["source"], literal(source)),
        (v["decision"], literal(p.decision.value)),
    ]
    for term, attr in _OPTIONAL:
        value = getattr(p, attr)
        if value:  # None and "" (no reason given) are left out
            pairs.append((v[term], literal(value)))
    extra: list[tuple[str, _Pairs]] = []
    for name, value in sorted(p.scores.items()):
        score_term = _SCORE_NAMES.get(name)
        if score_term is not None:
            pairs.append((v[score_term], s.double(value)))
            continue
        # Blank node labels must be unique in the document: derive them from the statement.
        bnode = f"_:s{stmt.rsplit('/', 1)[-1]}x{len(extra)}"
        pairs.append((v["score"], bnode))
        extra.append((bnode, [(v["scoreName"], literal(name)), (v["scoreValue"], s.double(value))]))
    if asserted:
        pairs.append((v["graph"], s.graphs[source]))
    return pairs, extra


class _Plan:
    """Everything both writers need, computed once: entities, facts, statements."""

    def __init__(
        self,
        *,
        entities: Iterable[Entity],
        triples: Iterable[Triple],
        base: str,
        fact_decisions: Iterable[Decision],
    ) -> None:
        try:
            check_base(base)
        except ValueError as err:
            raise ExportError(str(err)) from err
        self.base = base
        self.by_id = entity_index(entities)
        self.triples = list(triples)
        self.fact_decisions = frozenset(fact_decisions)
        ids = list(self.by_id)
        ids += [i for i in referenced_ids(self.triples) if i not in self.by_id]
        self.entity_ids = ids
        for entity_id in ids:
            if entity_id.startswith(RESERVED_PREFIXES):
                raise ExportError(
                    f"entity id {entity_id!r} starts with a prefix reserved for graphs and "
                    f"statements ({', '.join(RESERVED_PREFIXES)})"
                )
        undescribed = len(ids) - len(self.by_id)
        if undescribed:
            logger.warning("%d entities used by triples have no Entity record", undescribed)
        self.statements: list[tuple[str, Triple]] = []
        seen: set[str] = set()
        duplicates = 0
        for t in self.triples:
            stmt = _statement_iri(base, t)
            if stmt in seen:
                duplicates += 1  # same claim twice: the first record wins
                continue
            seen.add(stmt)
            self.statements.append((stmt, t))
        if duplicates:
            logger.info("%d duplicate statements dropped (same triple and provenance)", duplicates)

    def asserted(self, t: Triple) -> bool:
        return t.provenance.decision in self.fact_decisions

    def counts(self) -> dict[str, int]:
        return {
            "entities": len(self.entity_ids),
            "facts": len({t.key for _, t in self.statements if self.asserted(t)}),
            "statements": len(self.statements),
        }


def write_nquads(
    path: str | Path,
    *,
    entities: Iterable[Entity],
    triples: Iterable[Triple],
    base: str,
    fact_decisions: Iterable[Decision] = DEFAULT_FACT_DECISIONS,
) -> dict[str, int]:
    """Write N-Quads (facts in per-source named graphs, the statements of the triples not
    asserted in `<base>graph/candidates`); returns entity/fact/statement counts."""
    plan = _Plan(entities=entities, triples=triples, base=base, fact_decisions=fact_decisions)
    s = _Syntax(prefixed=False, base=plan.base)

    def lines() -> Iterator[str]:
        for entity_id in plan.entity_ids:
            subject = s.entity(entity_id)
            pairs, extra = _entity_pairs(plan.by_id.get(entity_id), entity_id, s)
            for pred, obj in pairs:
                yield f"{subject} {pred} {obj} .\n"
            for bnode, bpairs in extra:
                for pred, obj in bpairs:
                    yield f"{bnode} {pred} {obj} .\n"
        for _stmt, t in plan.statements:
            if plan.asserted(t):
                graph = s.graphs[t.provenance.source.value]
                yield f"{s.entity(t.head)} {s.relation(t.relation)} {s.entity(t.tail)} {graph} .\n"
        for stmt, t in plan.statements:
            subject = s.iri(stmt)
            asserted = plan.asserted(t)
            # Quads of the default graph have no fourth term.
            end = " .\n" if asserted else f" {s.candidates} .\n"
            pairs, extra = _statement_pairs(t, stmt=stmt, asserted=asserted, s=s)
            for pred, obj in pairs:
                yield f"{subject} {pred} {obj}{end}"
            for bnode, bpairs in extra:
                for pred, obj in bpairs:
                    yield f"{bnode} {pred} {obj}{end}"

    _write(path, lines())
    return plan.counts()


def write_turtle(
    path: str | Path,
    *,
    entities: Iterable[Entity],
    triples: Iterable[Triple],
    base: str,
    fact_decisions: Iterable[Decision] = DEFAULT_FACT_DECISIONS,
) -> dict[str, int]:
    """Write Turtle: the facts (no graphs), entities and statements; returns the counts."""
    plan = _Plan(entities=entities, triples=triples, base=base, fact_decisions=fact_decisions)
    s = _Syntax(prefixed=True, base=plan.base)

    def block(subject: str, pairs: _Pairs) -> str:
        body = " ;\n    ".join(f"{pred} {obj}" for pred, obj in pairs)
        return f"{subject} {body} .\n"

    def lines() -> Iterator[str]:
        for prefix, ns in _PREFIXES.items():
            yield f"@prefix {prefix}: <{ns}> .\n"
        yield "\n# Entities\n"
        for entity_id in plan.entity_ids:
            pairs, extra = _entity_pairs(plan.by_id.get(entity_id), entity_id, s)
            yield block(s.entity(entity_id), pairs)
            for bnode, bpairs in extra:
                yield block(bnode, bpairs)
        decisions = ", ".join(sorted(d.value for d in plan.fact_decisions)) or "none"
        yield f"\n# Facts (decisions: {decisions}; sources are on the statements below)\n"
        facts: set[tuple[str, str, str]] = set()
        for _stmt, t in plan.statements:
            if plan.asserted(t) and t.key not in facts:
                facts.add(t.key)
                yield f"{s.entity(t.head)} {s.relation(t.relation)} {s.entity(t.tail)} .\n"
        yield (
            "\n# Statements: provenance and scores of every triple; those without kge:graph are"
            " candidates, not facts\n"
        )
        for stmt, t in plan.statements:
            pairs, extra = _statement_pairs(t, stmt=stmt, asserted=plan.asserted(t), s=s)
            yield block(s.iri(stmt), pairs)
            for bnode, bpairs in extra:
                yield block(bnode, bpairs)

    _write(path, lines())
    return plan.counts()


def _write(path: str | Path, lines: Iterator[str]) -> None:
    count = 0
    try:
        with atomic_write(path) as handle:
            count = _write_chunks(handle, lines)
    except UnicodeEncodeError as err:
        bad = err.object[err.start : err.end] if isinstance(err.object, str) else ""
        raise ExportError(f"{path}: text not encodable as UTF-8 (lone surrogate {bad!r})") from err
    logger.info("wrote %s (%d blocks)", path, count)


def _write_chunks(handle: IO[str], lines: Iterator[str]) -> int:
    count = 0
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= 10_000:
            handle.write("".join(chunk))
            count += len(chunk)
            chunk.clear()
    handle.write("".join(chunk))
    return count + len(chunk)


def graph_names(base: str) -> Mapping[str, URIRef]:
    """The named graph of every source, for queries: {"seed": <base>graph/seed, ...}."""
    return {k.value: graph_iri(base, k.value) for k in SourceKind}


def candidates_graph(base: str) -> URIRef:
    """The named graph of the candidates' statements in N-Quads: `<base>graph/candidates`."""
    return graph_iri(base, CANDIDATES)
