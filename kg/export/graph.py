"""The graph as a networkx MultiDiGraph, and a GraphML writer for tools like Gephi or yEd.

Nodes are entity ids with `label` and `type` (and `item_id` on items); edges carry `relation`,
`source`, `decision` and, when scored, `confidence`. Parallel edges keep every provenance.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import networkx as nx

from kgenrich.kg.atomic import atomic_write
from kgenrich.kg.export._common import entity_index, item_id_of
from kgenrich.kg.records import Entity, Triple

logger = logging.getLogger(__name__)


def to_networkx(*, entities: Iterable[Entity], triples: Iterable[Triple]) -> nx.MultiDiGraph:
    """A MultiDiGraph of the entities and triples; entities only triples mention get no label."""
    graph = nx.MultiDiGraph()
    for entity in entity_index(entities).values():
        node: dict[str, str] = {"label": entity.label, "type": entity.type}
        node["source"] = entity.source.value
        item = item_id_of(entity.id)
        if item is not None:
            node["item_id"] = item
        graph.add_node(entity.id, **node)
    for t in triples:
        p = t.provenance
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
    path: str | Path, *, entities: Iterable[Entity], triples: Iterable[Triple]
) -> dict[str, int]:
    """Write GraphML atomically; returns node and edge counts."""
    graph = to_networkx(entities=entities, triples=triples)
    with atomic_write(path, mode="wb") as handle:
        nx.write_graphml(graph, handle, encoding="utf-8")
    logger.info("wrote %s (%d nodes, %d edges)", path, graph.number_of_nodes(), graph.size())
    return {"nodes": graph.number_of_nodes(), "edges": graph.size()}
