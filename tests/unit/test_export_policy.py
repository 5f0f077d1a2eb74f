"""Assertion policy: only trusted and accepted triples are facts in Turtle, N-Quads, GraphML and the
graph store; every other candidate is a reified statement with its decision, scores and evidence
(in N-Quads in `<base>graph/candidates`), and `export.assert_decisions` changes the policy."""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdflib import RDF, Dataset, Graph, Literal, URIRef

from kgenrich.flows.io import write_exports
from kgenrich.kg.export.jsonl import read_jsonl
from kgenrich.kg.export.rdf import candidates_graph, graph_names, write_nquads, write_turtle
from kgenrich.kg.export.select import DEFAULT_FACT_DECISIONS
from kgenrich.kg.namespace import KGN, entity_iri, relation_iri
from kgenrich.kg.records import Decision, Entity, Provenance, SourceKind, Triple
from kgenrich.kg.store import GraphStore
from kgenrich.settings import ExportSettings, Settings

BASE = "https://kgenrich.dev/id/"
README = Path(__file__).resolve().parents[2] / "README.md"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:rdflib")

ENTITIES = [
    Entity(id="item/1", label="Man of Steel", type="Movie", aliases=("1",)),
    Entity(id="person/zack-snyder", label="Zack Snyder", type="Person"),
    Entity(id="person/christopher-nolan", label="Christopher Nolan", type="Person"),
    Entity(id="genre/action", label="Action", type="Genre"),
]


def _t(tail: str, relation: str, decision: Decision, conf: float) -> Triple:
    source = SourceKind.CATALOG if decision is Decision.TRUSTED else SourceKind.COMPLETED
    return Triple(head="item/1", relation=relation, tail=tail, provenance=Provenance(
        source=source, item_id="1", model=None if source is SourceKind.CATALOG else "qwen",
        evidence=f"evidence for {tail} ({decision.value})", decision=decision,
        scores={"confidence": conf, "kge_probability": conf / 2}))


# One triple per decision, each with its own (head, relation, tail).
TRIPLES = [
    _t("genre/action", "has_genre", Decision.TRUSTED, 1.0),
    _t("person/zack-snyder", "directed_by", Decision.ACCEPTED, 0.93),
    _t("person/christopher-nolan", "directed_by", Decision.REVIEW, 0.55),
    _t("person/christopher-nolan", "written_by", Decision.UNVERIFIED_NEW_ENTITY, 0.5),
    _t("person/zack-snyder", "starring", Decision.REJECTED, 0.1),
    _t("genre/action", "has_mood", Decision.PENDING, 0.3),
]
ASSERTED = {Decision.TRUSTED, Decision.ACCEPTED}


def _fact(t: Triple) -> tuple[URIRef, URIRef, URIRef]:
    return entity_iri(BASE, t.head), relation_iri(t.relation), entity_iri(BASE, t.tail)


def _export(tmp_path: Path, **export: object) -> Path:
    settings = ExportSettings(formats=("turtle", "nquads", "graphml"), **export)  # type: ignore[arg-type]
    write_exports(tmp_path, entities=ENTITIES, triples=TRIPLES, items=None, interactions=None,
                  settings=settings)
    return tmp_path


def _statements(graph: Graph) -> dict[str, dict[str, str]]:
    """decision -> the statement's provenance, for every rdf:Statement in `graph`."""
    out: dict[str, dict[str, str]] = {}
    for stmt in graph.subjects(RDF.type, RDF.Statement):
        props = {str(p).rsplit("#", 1)[-1]: str(o) for p, o in graph.predicate_objects(stmt)}
        out[props["decision"]] = props
    return out


def test_default_policy_asserts_only_trusted_and_accepted(tmp_path: Path) -> None:
    out = _export(tmp_path)
    asserted = [t for t in TRIPLES if t.provenance.decision in ASSERTED]
    candidates = [t for t in TRIPLES if t.provenance.decision not in ASSERTED]

    turtle = Graph().parse(out / "graph.ttl", format="turtle")
    for t in asserted:
        assert _fact(t) in turtle
    for t in candidates:
        assert _fact(t) not in turtle, t.provenance.decision
    # ... but each candidate is there as a statement with its decision, scores and evidence
    stmts = _statements(turtle)
    for t in candidates:
        got = stmts[t.provenance.decision.value]
        assert got["subject"] == str(entity_iri(BASE, t.head))
        assert got["object"] == str(entity_iri(BASE, t.tail))
        assert float(got["confidence"]) == t.provenance.scores["confidence"]
        assert float(got["kgeProbability"]) == t.provenance.scores["kge_probability"]
        assert got["evidence"] == t.provenance.evidence
        assert "graph" not in got  # no graph asserts it

    ds = Dataset()
    ds.parse(out / "graph.nq", format="nquads")
    cand = candidates_graph(BASE)
    for s, p, o, g in ds.quads((None, None, None, None)):
        if (s, p, o) in {_fact(t) for t in candidates}:
            raise AssertionError(f"candidate asserted in graph {g}")
        if g is not None and URIRef(str(g)) == cand:
            continue
        # outside graph/candidates no statement is about a candidate
        if p == KGN.decision:
            assert str(o) in {"trusted", "accepted"}, (s, o, g)
    assert set(_statements(ds.graph(cand))) == {t.provenance.decision.value for t in candidates}
    assert set(_statements(ds.default_graph)) == {"trusted", "accepted"}
    names = graph_names(BASE)
    assert len(ds.graph(names["catalog"])) == 1 and len(ds.graph(names["completed"])) == 1

    graphml = nx.read_graphml(out / "graph.graphml", force_multigraph=True)
    assert sorted(d["decision"] for _, _, d in graphml.edges(data=True)) == [
        "accepted", "trusted"]
    # the lossless dump keeps every candidate
    assert read_jsonl(out).triples == tuple(TRIPLES)


def test_assert_decisions_setting_asserts_more(tmp_path: Path) -> None:
    out = _export(tmp_path, assert_decisions=("trusted", "accepted", "review"))
    turtle = Graph().parse(out / "graph.ttl", format="turtle")
    review = TRIPLES[2]
    assert _fact(review) in turtle and _fact(TRIPLES[3]) not in turtle
    ds = Dataset()
    ds.parse(out / "graph.nq", format="nquads")
    assert _fact(review) in ds.graph(graph_names(BASE)["completed"])
    assert "review" not in _statements(ds.graph(candidates_graph(BASE)))
    graphml = nx.read_graphml(out / "graph.graphml", force_multigraph=True)
    assert sorted(d["decision"] for _, _, d in graphml.edges(data=True)) == [
        "accepted", "review", "trusted"]


def test_setting_default_is_the_exporters_default() -> None:
    assert {Decision(d) for d in Settings().export.assert_decisions} == DEFAULT_FACT_DECISIONS
    with pytest.raises(ValueError, match="assert_decisions"):
        ExportSettings(assert_decisions=("acepted",))  # type: ignore[arg-type]


def _readme_review_query() -> str:
    text = README.read_text(encoding="utf-8")
    marker = text.index("The candidates waiting for review")
    match = re.search(r"```sparql\n(.*?)```", text[marker:], flags=re.S)
    assert match is not None
    return match.group(1)


def _review_rows(rows: list[dict[str, str]]) -> list[tuple[str, str, str, str, str]]:
    return [(r["head"], r["relation"], r["tail"], r["confidence"], r["evidence"]) for r in rows]


def test_readme_query_lists_the_review_candidates(tmp_path: Path) -> None:
    query = _readme_review_query()
    out = _export(tmp_path)
    review = TRIPLES[2]
    want = [(str(entity_iri(BASE, review.head)), str(relation_iri(review.relation)),
             str(entity_iri(BASE, review.tail)), "0.55", str(review.provenance.evidence))]

    turtle = Graph().parse(out / "graph.ttl", format="turtle")
    rows = [{str(k): str(v) for k, v in row.asdict().items()}  # type: ignore[union-attr]
            for row in turtle.query(query)]
    assert _review_rows(rows) == want

    # graph.nq: the same pattern inside the candidates graph
    ds = Dataset()
    ds.parse(out / "graph.nq", format="nquads")
    body = query[query.index("{") + 1: query.rindex("}")]
    nq_query = (query[: query.index("{") + 1] + f" GRAPH <{candidates_graph(BASE)}> {{"
                + body + "} }" + query[query.rindex("}") + 1:])
    rows = [{str(k): str(v) for k, v in row.asdict().items()}  # type: ignore[union-attr]
            for row in ds.query(nq_query)]
    assert _review_rows(rows) == want

    # the graph store (what `kgenrich query` runs on), loaded with the same policy
    with GraphStore.open(None, base=BASE) as store:
        store.load(ENTITIES, TRIPLES)
        result = store.query(query)
        assert isinstance(result, list)
        assert _review_rows(result) == want
        assert store.count() == {"seed": 0, "catalog": 1, "extracted": 0, "completed": 1}
        assert not store.query(
            f"ASK {{ GRAPH ?g {{ <{entity_iri(BASE, 'item/1')}> "
            f"<{relation_iri('written_by')}> ?o }} }}")
        store.export(tmp_path / "store.nq", format="nquads")
    exported = Dataset()
    exported.parse(tmp_path / "store.nq", format="nquads")
    assert set(_statements(exported.graph(candidates_graph(BASE)))) == {
        "review", "unverified_new_entity", "rejected", "pending"}
    assert (None, KGN.decision, Literal("review")) not in exported.default_graph


_decisions = st.sampled_from(list(Decision))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chosen=st.lists(_decisions, min_size=1, max_size=12),
       policy=st.frozensets(_decisions, max_size=len(Decision)))
def test_facts_are_exactly_the_triples_of_the_asserted_decisions(
    tmp_path: Path, chosen: list[Decision], policy: frozenset[Decision]
) -> None:
    # several triples may share a key with different decisions: a key is a fact when any of its
    # triples is asserted, and otherwise appears only reified
    triples = [
        Triple(head=f"item/{n % 4}", relation="directed_by", tail=f"person/p{n % 3}",
               provenance=Provenance(source=SourceKind.COMPLETED, item_id=str(n % 4),
                                     evidence=f"e{n}", decision=d))
        for n, d in enumerate(chosen)
    ]
    facts = {_fact(t) for t in triples if t.provenance.decision in policy}
    write_turtle(tmp_path / "p.ttl", entities=[], triples=triples, base=BASE,
                 fact_decisions=policy)
    write_nquads(tmp_path / "p.nq", entities=[], triples=triples, base=BASE,
                 fact_decisions=policy)
    turtle = Graph().parse(tmp_path / "p.ttl", format="turtle")
    rel = relation_iri("directed_by")
    assert set(turtle.triples((None, rel, None))) == facts
    ds = Dataset()
    ds.parse(tmp_path / "p.nq", format="nquads")
    plain = {(s, p, o) for s, p, o, _g in ds.quads((None, rel, None, None))}
    assert plain == facts
    in_candidates = _statements(ds.graph(candidates_graph(BASE)))
    assert set(in_candidates) == {t.provenance.decision.value for t in triples
                                  if t.provenance.decision not in policy}
