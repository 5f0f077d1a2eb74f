"""networkx / GraphML export."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from kgenrich.kg.export.graph import to_networkx, write_graphml
from kgenrich.kg.export.jsonl import read_jsonl

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDS = read_jsonl(DATA / "golden_records")


def test_multidigraph_attributes() -> None:
    g = to_networkx(entities=RECORDS.entities, triples=RECORDS.triples)
    # edges are the asserted triples only: the review and rejected ones are left out
    assert g.number_of_nodes() == 6 and g.number_of_edges() == 3
    assert g.nodes["item/m1"] == {
        "label": "Toy Story",
        "type": "Movie",
        "source": "catalog",
        "item_id": "m1",
    }
    (edge,) = g.get_edge_data("item/m 2", "person/zoë-obrien").values()
    assert edge["relation"] == "starring" and edge["confidence"] == 0.91
    assert edge["source"] == "extracted" and edge["decision"] == "accepted"


def test_graphml_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "kg.graphml"
    assert write_graphml(out, entities=RECORDS.entities, triples=RECORDS.triples) == {
        "nodes": 6,
        "edges": 3,
    }
    back = nx.read_graphml(out, force_multigraph=True)
    assert back.nodes["person/zoë-obrien"]["label"] == 'Zoë "Z" O\'Brien'
    assert sorted(d["decision"] for _, _, d in back.edges(data=True)) == [
        "accepted",
        "trusted",
        "trusted",
    ]
