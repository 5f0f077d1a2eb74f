"""RDF export: golden Turtle, N-Quads graphs per source, filtering, IRI minting round-trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdflib import RDF, RDFS, Dataset, Graph, Literal, URIRef
from rdflib.compare import isomorphic

from kgenrich.errors import ConfigError, ExportError
from kgenrich.kg.export.jsonl import read_jsonl
from kgenrich.kg.export.rdf import candidates_graph, write_nquads, write_turtle
from kgenrich.kg.export.select import select
from kgenrich.kg.ids import mint_entity_id
from kgenrich.kg.namespace import KGN, KGR, entity_id, entity_iri, graph_iri
from kgenrich.kg.records import Decision, Entity, Provenance, SourceKind, Triple

DATA = Path(__file__).resolve().parents[1] / "data"
BASE = "https://kgenrich.dev/id/"
RECORDS = read_jsonl(DATA / "golden_records")
# rdflib's own N-Quads parser and SPARQL engine use its deprecated Dataset.default_context.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:rdflib")


def test_turtle_matches_golden(tmp_path: Path) -> None:
    out = tmp_path / "kg.ttl"
    counts = write_turtle(out, entities=RECORDS.entities, triples=RECORDS.triples, base=BASE)
    assert counts == {"entities": 6, "facts": 3, "statements": 5}
    written = Graph().parse(out, format="turtle")
    golden = Graph().parse(DATA / "golden.ttl", format="turtle")
    assert isomorphic(written, golden)


def test_nquads_union_matches_golden_and_graphs_split_by_source(tmp_path: Path) -> None:
    out = tmp_path / "kg.nq"
    write_nquads(out, entities=RECORDS.entities, triples=RECORDS.triples, base=BASE)
    ds = Dataset()
    ds.parse(out, format="nquads")
    union = Graph()
    for s, p, o, _g in ds.quads((None, None, None, None)):
        union.add((s, p, o))
    assert isomorphic(union, Graph().parse(DATA / "golden.ttl", format="turtle"))
    graphs = {str(g.identifier): len(g) for g in ds.graphs() if len(g)}
    assert graphs[str(graph_iri(BASE, "seed"))] == 1
    assert graphs[str(graph_iri(BASE, "catalog"))] == 1
    assert graphs[str(graph_iri(BASE, "extracted"))] == 1
    # the review and the rejected triple are candidates: statements in graph/candidates only
    assert str(graph_iri(BASE, "completed")) not in graphs
    candidates = ds.graph(candidates_graph(BASE))
    assert {str(o) for o in candidates.objects(None, KGN.decision)} == {"review", "rejected"}
    rejected = (
        entity_iri(BASE, "item/m 2"),
        KGR.directed_by,
        entity_iri(BASE, "person/john-lasseter"),
    )
    assert not any(True for _ in ds.quads((*rejected, None)))


def test_sparql_filters_by_source_and_confidence(tmp_path: Path) -> None:
    out = tmp_path / "kg.nq"
    write_nquads(out, entities=RECORDS.entities, triples=RECORDS.triples, base=BASE)
    ds = Dataset()
    ds.parse(out, format="nquads")
    query = """
        SELECT ?h ?t WHERE {
          ?s rdf:subject ?h ; rdf:predicate kgr:starring ; rdf:object ?t ;
             kge:source "extracted" ; kge:confidence ?c ; kge:graph ?g .
          FILTER(?c >= 0.9)
          GRAPH ?g { ?h kgr:starring ?t }
        }"""
    result = ds.query(query, initNs={"rdf": RDF, "kge": URIRef(str(KGN)), "kgr": KGR})
    rows = [(str(row[0]), str(row[1])) for row in result]  # type: ignore[index]
    assert [(entity_id(BASE, h), entity_id(BASE, t)) for h, t in rows] == [
        ("item/m 2", "person/zoë-obrien")
    ]


def test_fact_decisions_and_select(tmp_path: Path) -> None:
    trusted = select(RECORDS.triples, include_decisions=["trusted"])
    assert {t.provenance.source for t in trusted} == {SourceKind.SEED, SourceKind.CATALOG}
    no_llm = select(RECORDS.triples, include_sources=("seed", "catalog"))
    assert no_llm == trusted
    assert select(RECORDS.triples) == list(RECORDS.triples)
    with pytest.raises(ConfigError, match="unknown decision"):
        select(RECORDS.triples, include_decisions=["acepted"])
    out = tmp_path / "kg.ttl"
    counts = write_turtle(
        out,
        entities=RECORDS.entities,
        triples=RECORDS.triples,
        base=BASE,
        fact_decisions=[Decision.TRUSTED],
    )
    assert counts["facts"] == 2 and counts["statements"] == 5


def test_bad_base_reserved_ids_and_surrogates_leave_no_file(tmp_path: Path) -> None:
    out = tmp_path / "kg.nq"
    with pytest.raises(ExportError, match="base IRI"):
        write_nquads(out, entities=[], triples=RECORDS.triples, base="not an iri")
    clash = Entity(id="graph/seed", label="x", type="Graph")
    with pytest.raises(ExportError, match="reserved"):
        write_nquads(out, entities=[clash], triples=[], base=BASE)
    bad = Entity(id="thing/x", label="bad \udc80 label", type="Thing")
    with pytest.raises(ExportError, match="UTF-8"):
        write_turtle(out, entities=[bad], triples=[], base=BASE)
    assert list(tmp_path.iterdir()) == []


def test_kge_namespace_fails_on_misspelt_terms() -> None:
    assert str(KGN.confidence) == "https://kgenrich.dev/ns#confidence"
    with pytest.raises(AttributeError):
        KGN.confidense  # noqa: B018


_labels = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(label=_labels, type_=st.sampled_from(["Person", "Genre", "Thing"]), raw_id=_labels)
def test_any_label_mints_an_iri_that_round_trips(
    tmp_path: Path, label: str, type_: str, raw_id: str
) -> None:
    minted = mint_entity_id(type_, label)
    item = f"item/{raw_id}"  # catalog ids are arbitrary text, not slugs
    entities = [
        Entity(id=minted, label=label, type=type_),
        Entity(id=item, label=raw_id, type="Movie"),
    ]
    triples = [
        Triple(
            head=item,
            relation="starring",
            tail=minted,
            provenance=Provenance(
                source=SourceKind.EXTRACTED, evidence=label, decision=Decision.ACCEPTED
            ),
        )
    ]
    for writer, fmt in ((write_turtle, "turtle"), (write_nquads, "nquads")):
        out = tmp_path / f"kg.{fmt}"
        writer(out, entities=entities, triples=triples, base=BASE)
        graph: Graph = Dataset() if fmt == "nquads" else Graph()
        graph.parse(out, format=fmt)
        for eid, lab in ((minted, label), (item, raw_id)):
            iri = entity_iri(BASE, eid)
            assert entity_id(BASE, str(iri)) == eid
            labels = {o for _s, _p, o, *_ in _quads(graph, (iri, RDFS.label, None))}
            assert labels == {Literal(lab)}
        evidence = {o for _s, _p, o, *_ in _quads(graph, (None, KGN.evidence, None))}
        assert evidence == {Literal(label)}


def _quads(graph: Graph, pattern: tuple[Any, Any, Any]) -> list[tuple[Any, ...]]:
    if isinstance(graph, Dataset):
        return list(graph.quads((*pattern, None)))
    return list(graph.triples(pattern))
