"""The graph as a networkx MultiDiGraph, and a GraphML writer for tools like Gephi or yEd.

Nodes are entity ids with `label`, `type` and `source` (and `item_id` on items); when present,
`alt_labels` (the aliases) and `attribute:<relation>` (catalog values) hold JSON lists and
`text:<column>` the item's free text. Edges are the asserted triples only (decision in
`edge_decisions`, default trusted and accepted): candidates are not facts, and the lossless
JSONL dump is where they are kept. Edges carry `relation`, `source`, `decision` and, when
scored, `confidence`. Parallel edges keep every provenance.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import networkx as nx

from kgenrich.kg.atomic import atomic_write
from kgenrich.kg.export._common import entity_index, item_id_of
from kgenrich.kg.export.select import DEFAULT_FACT_DECISIONS
from kgenrich.kg.records import Decision, Entity, Triple

logger = logging.getLogger(__name__)


def to_networkx(
    *,
    entities: Iterable[Entity],
    triples: Iterable[Triple],
    edge_decisions: Iterable[Decision] = DEFAULT_FACT_DECISIONS,
) -> nx.MultiDiGraph:
    """A MultiDiGraph of the entities and the asserted triples (decision in `edge_decisions`);
    entities only triples mention get no label."""
    asserted = frozenset(edge_decisions)
    graph = nx.MultiDiGraph()
    for entity in entity_index(entities).values():
        node: dict[str, str] = {"label": entity.label, "type": entity.type}
        node["source"] = entity.source.value
        item = item_id_of(entity.id)
        if item is not None:
            node["item_id"] = item
        # GraphML values are scalars: lists are written as JSON so they read back exactly.
        if entity.aliases:
            node["alt_labels"] = json.dumps(list(entity.aliases), ensure_ascii=False)
        for name, text in entity.text.items():
            node[f"text:{name}"] = text
        for name, values in entity.attributes.items():
            node[f"attribute:{name}"] = json.dumps(list(values), ensure_ascii=False)
        graph.add_node(entity.id, **node)
    for t in triples:
        p = t.provenance
        if p.decision not in asserted:
            continue
        attrs: dict[str, str | float] = {
            "relation": t.relation,
            "source": p.source.value,
            "decision": p.decision.value,
        }
        # GraphML keys are typed: only write attributes that are present, never None.
        if "confidence" in p.scores:
            attrs["confidence"] = float(p.scores["confidence"])
        if p.item_id is not None:
            attrs["item_id"] = p.item_id
        graph.add_edge(t.head, t.tail, **attrs)
    return graph


def write_graphml(
    path: str | Path,
    *,
    entities: Iterable[Entity],
    triples: Iterable[Triple],
    edge_decisions: Iterable[Decision] = DEFAULT_FACT_DECISIONS,
) -> dict[str, int]:
    """Write GraphML atomically (edges: the triples whose decision is in `edge_decisions`);
    returns node and edge counts."""
    graph = to_networkx(entities=entities, triples=triples, edge_decisions=edge_decisions)
    with atomic_write(path, mode="wb") as handle:
        nx.write_graphml(graph, handle, encoding="utf-8")
    logger.info("wrote %s (%d nodes, %d edges)", path, graph.number_of_nodes(), graph.size())
    return {"nodes": graph.number_of_nodes(), "edges": graph.size()}
