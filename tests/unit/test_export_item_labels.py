"""Nothing lost: on the shipped demo, whose seed KG names the items by id before the catalog does,
every exporter labels an item with its catalog title, keeps its id as an alternative label and
keeps the catalog's other fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from rdflib import RDFS, SKOS, Dataset, Graph, Literal

from kgenrich.data import DEMO, ontology
from kgenrich.kg.export.graph import write_graphml
from kgenrich.kg.export.jsonl import read_jsonl, write_jsonl
from kgenrich.kg.export.rdf import write_nquads, write_turtle
from kgenrich.kg.export.recbole import write_recbole
from kgenrich.kg.export.ripplenet import write_ripplenet
from kgenrich.kg.io.catalog import CatalogMapping, read_catalog
from kgenrich.kg.io.seed import read_seed
from kgenrich.kg.namespace import KGN, entity_iri
from kgenrich.kg.ontology import load_ontology
from kgenrich.kg.records import Entity, Item, SourceKind
from kgenrich.pipeline.catalog import catalog_triples, item_entities, with_item_entities
from kgenrich.runs.graph import BaseGraph, base_graph

BASE = "https://kgenrich.dev/id/"
# The demo's own mapping (kgenrich.flows.demo.demo_inputs), without importing Prefect.
DEMO_MAPPING = CatalogMapping(
    id="id", title="title", text=("description",),
    attributes={"genre": "has_genre", "country": "country_of_origin",
                "language": "original_language"},
)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:rdflib")


def _demo_graph() -> BaseGraph:
    ont = load_ontology(ontology("movies"))
    items = read_catalog(DEMO / "catalog.csv", mapping=DEMO_MAPPING)
    seed = read_seed(DEMO / "seed.tsv", ontology=ont, format="tsv")
    return base_graph(
        ontology=ont, items=items, seed=seed,
        catalog=lambda its, **kw: catalog_triples(its, ontology=kw["ontology"], index=kw["index"],
                                                  item_links=kw["links"]))


def test_demo_seed_names_the_items_by_id_first() -> None:
    graph = _demo_graph()
    assert graph.seed is not None
    seed_items = {e.id: e for e in graph.seed.entities if e.id.startswith("item/")}
    assert len(seed_items) == 60
    assert all(e.label == e.id.removeprefix("item/") for e in seed_items.values())


def _check_item(item: Item, *, label: str, alt: list[str], text: dict[str, str],
                attributes: dict[str, list[str]]) -> None:
    assert label == item.title
    assert item.id in alt and item.title not in alt
    assert text == dict(item.text)
    # RDF has no order among a subject's values: compare attribute values as sorted lists
    assert {k: sorted(v) for k, v in attributes.items()} == {
        k: sorted(v) for k, v in item.attributes.items()}


def _rdf_item(graph: Graph, item: Item) -> dict[str, Any]:
    iri = entity_iri(BASE, f"item/{item.id}")
    labels = list(graph.objects(iri, RDFS.label))
    assert len(labels) == 1, labels
    text: dict[str, str] = {}
    attributes: dict[str, list[str]] = {}
    for node in graph.objects(iri, KGN.catalogText):
        text[str(graph.value(node, KGN.fieldName))] = str(graph.value(node, KGN.fieldValue))
    for node in graph.objects(iri, KGN.catalogAttribute):
        name = str(graph.value(node, KGN.fieldName))
        attributes.setdefault(name, []).append(str(graph.value(node, KGN.fieldValue)))
    return {"label": str(labels[0]), "alt": [str(a) for a in graph.objects(iri, SKOS.altLabel)],
            "text": text, "attributes": attributes}


def test_every_exporter_labels_items_with_titles_and_keeps_ids_and_fields(tmp_path: Path) -> None:
    graph = _demo_graph()
    entities, triples = graph.entities(), graph.base
    items = graph.items
    assert len(items) == 60

    write_turtle(tmp_path / "g.ttl", entities=entities, triples=triples, base=BASE)
    turtle = Graph().parse(tmp_path / "g.ttl", format="turtle")
    write_nquads(tmp_path / "g.nq", entities=entities, triples=triples, base=BASE)
    ds = Dataset()
    ds.parse(tmp_path / "g.nq", format="nquads")
    for rdf in (turtle, ds.default_graph):
        for it in items:
            _check_item(it, **_rdf_item(rdf, it))
        assert not any(str(o).startswith("wd") for o in rdf.objects(None, RDFS.label))
        assert (entity_iri(BASE, "item/wd622769"), RDFS.label, Literal("Man of Steel")) in rdf

    write_graphml(tmp_path / "g.graphml", entities=entities, triples=triples)
    back = nx.read_graphml(tmp_path / "g.graphml", force_multigraph=True)
    for it in items:
        node = back.nodes[f"item/{it.id}"]
        _check_item(
            it, label=node["label"], alt=json.loads(node["alt_labels"]),
            text={k[len("text:"):]: v for k, v in node.items() if k.startswith("text:")},
            attributes={k[len("attribute:"):]: json.loads(v) for k, v in node.items()
                        if k.startswith("attribute:")})

    write_jsonl(tmp_path / "dump", entities=entities, triples=triples)
    by_id = {e.id: e for e in read_jsonl(tmp_path / "dump").entities}
    for it in items:
        e = by_id[f"item/{it.id}"]
        _check_item(it, label=e.label, alt=list(e.aliases), text=dict(e.text),
                    attributes={k: list(v) for k, v in e.attributes.items()})

    # The recommender files carry ids, not labels: every item keeps its id there.
    write_ripplenet(tmp_path / "ripplenet", entities=entities, triples=triples,
                    items=[it.id for it in items])
    index = (tmp_path / "ripplenet" / "item_index2entity_id.txt").read_text(encoding="utf-8")
    assert {line.split("\t")[0] for line in index.splitlines()} == {it.id for it in items}
    write_recbole(tmp_path / "recbole", entities=entities, triples=triples, dataset="demo")
    link = (tmp_path / "recbole" / "demo.link").read_text(encoding="utf-8").splitlines()[1:]
    assert {row.split("\t")[0] for row in link} == {it.id for it in items}


def test_catalog_title_wins_over_any_seed_name_in_either_order() -> None:
    item = Item(id="wd622769", title="Man of Steel", text={"description": "A 2013 film."},
                attributes={"has_genre": ("Action",)})
    seed = [
        Entity(id="person/zack-snyder", label="Zack Snyder", type="Person",
               source=SourceKind.SEED),
        Entity(id="item/wd622769", label="Man of Steel (film)", type="Movie",
               aliases=("wd622769", "MoS"), source=SourceKind.SEED),
    ]
    ont = load_ontology(ontology("movies"))
    for known in (seed, seed[::-1]):
        merged = with_item_entities(known, item_entities([item], ontology=ont, known=known))
        assert [e.id for e in merged] == [e.id for e in known]  # one record per id, order kept
        (movie,) = (e for e in merged if e.id == "item/wd622769")
        assert movie.label == "Man of Steel"
        assert movie.aliases == ("wd622769", "Man of Steel (film)", "MoS")
        assert movie.text == {"description": "A 2013 film."}
        assert movie.attributes == {"has_genre": ("Action",)}
        assert movie.source is SourceKind.SEED  # the seed named it first
    # No seed: the catalog alone names the item, the id is still an alternative label.
    (alone,) = with_item_entities([], item_entities([item], ontology=ont))
    assert (alone.label, alone.aliases, alone.source) == (
        "Man of Steel", ("wd622769",), SourceKind.CATALOG)
