"""The Oxigraph graph store: idempotent loads, graphs per source, SPARQL, exports, retraction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rdflib import RDF, Dataset, Graph, Literal, URIRef
from rdflib.compare import isomorphic

from kgenrich.cli_query import query_command
from kgenrich.errors import ConfigError, ExportError, InputError
from kgenrich.kg.export.rdf import graph_names, write_nquads, write_turtle
from kgenrich.kg.namespace import KGN, entity_iri, relation_iri
from kgenrich.kg.records import Decision, Entity, Provenance, SourceKind, Triple
from kgenrich.kg.store import LLM_SOURCES, RETRACTED, GraphStore

BASE = "https://kgenrich.dev/id/"
TRUSTED = {SourceKind.SEED, SourceKind.CATALOG}

ENTITIES = [
    Entity(id="item/1", label="Alien", type="Movie"),
    Entity(id="item/2", label="Heat", type="Movie"),
    Entity(id="person/ridley-scott", label="Ridley Scott", type="Person", aliases=("R. Scott",)),
    Entity(id="person/michael-mann", label="Michael Mann", type="Person"),
    Entity(id="genre/horror", label="Horror", type="Genre"),
    Entity(id="genre/crime", label="Crime", type="Genre"),
    # Minted by extraction; only an LLM triple mentions it.
    Entity(id="person/sigourney-weaver", label="Sigourney Weaver", type="Person",
           source=SourceKind.EXTRACTED),
]


def _t(h: str, r: str, t: str, source: SourceKind, *, item: str, conf: float | None = None,
       decision: Decision | None = None, **extra: float) -> Triple:
    llm = source in LLM_SOURCES
    scores = ({"confidence": conf} if conf is not None else {}) | extra
    return Triple(head=h, relation=r, tail=t, provenance=Provenance(
        source=source, item_id=item, model="qwen" if llm else None,
        prompt_version="v1" if llm else None,
        evidence="directed by Ridley Scott" if source is SourceKind.EXTRACTED else None,
        scores=scores,
        decision=decision or (Decision.ACCEPTED if llm else Decision.TRUSTED)))


TRIPLES = [
    _t("item/1", "directed_by", "person/ridley-scott", SourceKind.SEED, item="1"),
    _t("item/1", "has_genre", "genre/horror", SourceKind.CATALOG, item="1"),
    _t("item/2", "has_genre", "genre/crime", SourceKind.CATALOG, item="2"),
    _t("item/2", "directed_by", "person/michael-mann", SourceKind.SEED, item="2"),
    _t("item/1", "directed_by", "person/ridley-scott", SourceKind.EXTRACTED, item="1", conf=0.93,
       nli=0.7),  # same fact as the seed one; "nli" has no term of its own (a score node)
    _t("item/1", "starring", "person/sigourney-weaver", SourceKind.EXTRACTED, item="1", conf=0.85),
    _t("item/2", "has_genre", "genre/thriller", SourceKind.COMPLETED, item="2", conf=0.91),
    _t("item/1", "has_genre", "genre/crime", SourceKind.COMPLETED, item="1", conf=0.55,
       decision=Decision.REVIEW),
    _t("item/2", "starring", "person/ridley-scott", SourceKind.COMPLETED, item="2", conf=0.12,
       decision=Decision.REJECTED),
]


def _store(path: Path | None = None) -> GraphStore:
    store = GraphStore.open(path, base=BASE)
    store.load(ENTITIES, TRIPLES)
    return store


def _iri(entity_id: str) -> URIRef:
    return entity_iri(BASE, entity_id)


def _facts(graph: Graph) -> set[tuple[str, str, str]]:
    rel = str(relation_iri(""))
    return {(str(s), str(p), str(o)) for s, p, o in graph if str(p).startswith(rel)}


def _expected_facts(sources: set[SourceKind]) -> Graph:
    """The asserted facts of `sources`, built by hand with rdflib (not through any exporter):
    only trusted and accepted triples are facts; review and rejected ones are candidates."""
    g = Graph()
    for t in TRIPLES:
        p = t.provenance
        if p.source in sources and p.decision in {Decision.TRUSTED, Decision.ACCEPTED}:
            g.add((_iri(t.head), relation_iri(t.relation), _iri(t.tail)))
    return g


def _records_for(sources: set[SourceKind]) -> tuple[list[Entity], list[Triple]]:
    kept = [t for t in TRIPLES if t.provenance.source in sources]
    mentioned = {x for t in kept for x in (t.head, t.tail)}
    return [e for e in ENTITIES if e.source in sources or e.id in mentioned], kept


def _quads(store: GraphStore, tmp_path: Path, name: str) -> set[str]:
    out = tmp_path / name
    store.export(out, format="nquads", include_retracted=True)
    return set(out.read_text(encoding="utf-8").splitlines())


def test_loading_twice_adds_nothing(tmp_path: Path) -> None:
    with _store() as store:
        before = store.count(by="graph")
        first = _quads(store, tmp_path, "a.nq")
        report = store.load(ENTITIES, TRIPLES)
        assert report.replaced_quads == 0
        assert store.count(by="graph") == before
        assert _quads(store, tmp_path, "b.nq") == first
        # the "nli" score node kept its label, so it was not duplicated either
        assert len(store.query("SELECT ?b WHERE { ?s kge:score ?b }")) == 1  # type: ignore[arg-type]


def test_reloading_a_reverified_triple_replaces_its_provenance() -> None:
    thriller = TRIPLES[6]
    with _store() as store:
        store.load([], [thriller.with_provenance(decision=Decision.REJECTED,
                                                 scores={"confidence": 0.2})])
        rows = store.query(
            f"SELECT ?d ?c WHERE {{ ?s rdf:object <{_iri('genre/thriller')}> ;"
            " kge:decision ?d ; kge:confidence ?c }"
        )
        assert rows == [{"d": "rejected", "c": "0.2"}]
        # no completed fact is left: the "review" crime triple is a candidate, never a fact
        assert store.count()["completed"] == 0
        assert not store.query(
            f"ASK {{ GRAPH ?g {{ <{_iri('item/2')}> kgr:has_genre <{_iri('genre/thriller')}> }} }}"
        )


def test_facts_live_in_one_named_graph_per_source() -> None:
    with _store() as store:
        rows = store.query("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }")
        assert isinstance(rows, list)
        names = graph_names(BASE)  # the same IRIs the file exporter writes
        assert {r["g"] for r in rows} == {str(names[k.value]) for k in SourceKind}
        for kind in SourceKind:
            got = store.query(
                f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{names[kind.value]}> {{ ?s ?p ?o }} }}"
            )
            assert isinstance(got, Graph)
            assert isomorphic(got, _expected_facts({kind})), kind
        # completed: thriller only (the review crime triple is a candidate, not a fact)
        assert store.count() == {"seed": 2, "catalog": 2, "extracted": 2, "completed": 1}
        assert store.count(by="decision")["rejected"] == 1


def test_sparql_filters_by_source_and_confidence() -> None:
    with _store() as store:
        rows = store.query(
            'SELECT (COUNT(?s) AS ?n) WHERE { ?s kge:source "completed" ; kge:confidence ?c ;'
            " kge:graph ?g . FILTER(?c > 0.8) }"
        )
        assert rows == [{"n": "1"}]  # 0.91 asserted; 0.55 is too low, 0.12 was rejected
        rows = store.query(
            "SELECT ?h ?t ?c WHERE { ?s rdf:subject ?h ; rdf:predicate kgr:directed_by ;"
            ' rdf:object ?t ; kge:source "extracted" ; kge:confidence ?c ; kge:graph ?g .'
            " FILTER(?c >= 0.9) GRAPH ?g { ?h kgr:directed_by ?t } }"
        )
        assert rows == [{"h": str(_iri("item/1")), "t": str(_iri("person/ridley-scott")),
                         "c": "0.93"}]
        # plain patterns over the facts of the chosen sources only
        query = "SELECT DISTINCT ?i ?g WHERE { ?i kgr:has_genre ?g }"
        trusted = store.query(query, sources=TRUSTED)
        everything = store.query(query, sources=set(SourceKind))
        assert isinstance(trusted, list) and isinstance(everything, list)
        assert len(trusted) == 2 and len(everything) == 3  # the review crime one is no fact
        assert store.query(query) == []  # the default graph alone holds no facts


@pytest.mark.parametrize("sources", [None, TRUSTED, {SourceKind.COMPLETED}])
@pytest.mark.parametrize("fmt", ["turtle", "ntriples"])
def test_graph_exports_reparse_to_exactly_the_expected_graph(
    tmp_path: Path, sources: set[SourceKind] | None, fmt: str
) -> None:
    chosen = set(SourceKind) if sources is None else sources
    out = tmp_path / f"g.{fmt}"
    with _store() as store:
        store.export(out, format=fmt, sources=sources)  # type: ignore[arg-type]
    got = Graph().parse(out, format="turtle" if fmt == "turtle" else "nt")
    facts = Graph()
    for t in got:
        if str(t[1]).startswith(str(relation_iri(""))):
            facts.add(t)
    assert isomorphic(facts, _expected_facts(chosen))
    # and the whole graph is what the file exporter writes for the same records
    entities, triples = _records_for(chosen)
    reference = tmp_path / "reference.ttl"
    write_turtle(reference, entities=entities, triples=triples, base=BASE)
    assert isomorphic(got, Graph().parse(reference, format="turtle"))
    if chosen == TRUSTED:
        assert not any(str(o) in {"extracted", "completed"} for o in got.objects(None, KGN.source))
        assert (_iri("person/sigourney-weaver"), None, None) not in got


@pytest.mark.parametrize("sources", [None, TRUSTED])
@pytest.mark.parametrize("fmt", ["nquads", "trig"])
def test_dataset_exports_keep_the_graphs(
    tmp_path: Path, sources: set[SourceKind] | None, fmt: str
) -> None:
    chosen = set(SourceKind) if sources is None else sources
    out = tmp_path / f"d.{fmt}"
    with _store() as store:
        store.export(out, format=fmt, sources=sources)  # type: ignore[arg-type]
    got = Dataset()
    got.parse(out, format=fmt)
    entities, triples = _records_for(chosen)
    reference = tmp_path / "reference.nq"
    write_nquads(reference, entities=entities, triples=triples, base=BASE)
    want = Dataset()
    want.parse(reference, format="nquads")
    names = graph_names(BASE)
    for kind in SourceKind:
        graph = got.graph(names[kind.value])
        expected = _expected_facts({kind}) if kind in chosen else Graph()
        assert isomorphic(graph, expected), kind
    assert isomorphic(got.default_graph, want.default_graph)


def test_retraction_is_recorded_and_drops_the_items_live_facts(tmp_path: Path) -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    with _store() as store:
        done = store.retract(["1"], reason='catalog row "1" replaced', run="run-7", at=at)
        assert done.statements == 4  # catalog, 2 extracted, completed; the seed one stays
        # has_genre horror (catalog), directed_by + starring (extracted); the completed crime
        # triple is a review candidate, never a fact; the seed graph keeps its directed_by: the
        # seed statement still asserts it
        assert done.facts == 3
        assert store.query(
            f"ASK {{ GRAPH <{graph_names(BASE)['seed']}> {{ <{_iri('item/1')}> kgr:directed_by"
            f" <{_iri('person/ridley-scott')}> }} }}"
        )
        live = store.query("SELECT ?s WHERE { ?s kge:itemId \"1\" ; a rdf:Statement }")
        assert isinstance(live, list) and len(live) == 1  # the seed statement
        assert store.count() == {"seed": 2, "catalog": 1, "extracted": 0, "completed": 1}
        events = store.query(
            "SELECT ?why ?at ?run (COUNT(?st) AS ?n) WHERE { GRAPH ?g {"
            " ?e a prov:Invalidation ; kge:reason ?why ; prov:atTime ?at ; kge:itemId \"1\" ;"
            " prov:activity [ rdfs:label ?run ] . ?st prov:qualifiedInvalidation ?e } }"
            " GROUP BY ?why ?at ?run"
        )
        assert events == [{"why": 'catalog row "1" replaced', "at": "2025-01-02T03:04:05Z",
                           "run": "run-7", "n": "4"}]
        # the retracted statements keep their provenance, in the retracted graph only
        kept = store.query(
            f"SELECT ?c WHERE {{ GRAPH <{store.graph(RETRACTED).value}> {{"
            " ?s kge:source \"extracted\" ; kge:confidence ?c ; kge:score ?b . ?b ?p ?o } }"
        )
        assert isinstance(kept, list) and {r["c"] for r in kept} == {"0.93"}
        out = tmp_path / "after.ttl"
        store.export(out, format="turtle")
        got = Graph().parse(out, format="turtle")
        live_facts = _facts(got)
        assert (str(_iri("item/1")), str(relation_iri("directed_by")),
                str(_iri("person/ridley-scott"))) in live_facts
        assert not any(h == str(_iri("item/1")) and p != str(relation_iri("directed_by"))
                       for h, p, _ in live_facts)
        statements = {s for s in got.subjects(KGN.itemId, Literal("1"))
                      if (s, RDF.type, RDF.Statement) in got}
        assert len(statements) == 1  # the seed one
        with pytest.raises(ExportError, match="dataset format"):
            store.export(tmp_path / "x.ttl", format="turtle", include_retracted=True)
        # replacing the item's triples: load the new version after the retraction
        store.load([], [_t("item/1", "has_genre", "genre/crime", SourceKind.CATALOG, item="1")])
        assert store.count()["catalog"] == 2


def test_bad_sparql_is_an_input_error_with_the_parser_message() -> None:
    with _store() as store, pytest.raises(InputError, match=r"invalid SPARQL query: error at 1:"):
        store.query("SELECT ?x WHERE { ?x ")
    with GraphStore.open(None) as empty, pytest.raises(ConfigError, match="base IRI"):
        empty.load(ENTITIES, TRIPLES)


def test_persisted_store_reopens_with_the_same_contents(tmp_path: Path) -> None:
    db = tmp_path / "kg.oxigraph"
    with _store(db) as store:
        store.retract(["2"], reason="test", run="r1")
        before = _quads(store, tmp_path, "before.nq")
    with GraphStore.open(db) as again:  # the base was recorded in the store
        assert again.base == BASE
        assert _quads(again, tmp_path, "after.nq") == before
    with pytest.raises(ConfigError, match="base IRI"):
        GraphStore.open(db, base="https://example.org/other/")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(InputError, match="not an Oxigraph store"):
        GraphStore.open(tmp_path / "notes", base=BASE)


def test_export_write_failures_are_export_errors(tmp_path: Path) -> None:
    with _store() as store:
        with pytest.raises(ExportError, match="cannot write"):
            store.export(tmp_path / "missing" / "g.ttl", format="turtle")
        with pytest.raises(ExportError, match="unknown format"):
            store.export(tmp_path / "g.xml", format="rdfxml")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_query_command_prints_json_csv_and_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "kg"
    _store(db).close()
    select = 'SELECT ?s ?c WHERE { ?s kge:source "completed" ; kge:confidence ?c } ORDER BY ?c'
    assert query_command(db, select, "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["c"] for r in rows] == ["0.12", "0.55", "0.91"]
    rq = tmp_path / "q.rq"
    rq.write_text(select, encoding="utf-8")
    assert query_command(db, rq, "csv") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "s,c" and len(lines) == 4
    assert query_command(db, "ASK { ?s a rdf:Statement }", "json") == 0
    assert json.loads(capsys.readouterr().out) == {"boolean": True}
    assert query_command(db, "CONSTRUCT { ?s a ?t } WHERE { ?s a ?t } LIMIT 2", "table") == 0
    assert "subject" in capsys.readouterr().out
    with pytest.raises(InputError, match="no graph store"):
        query_command(tmp_path / "nope", select, "table")


def test_statements_carry_rdf_statement_type() -> None:
    with _store() as store:
        g = store.query("CONSTRUCT { ?s a rdf:Statement } WHERE { ?s a rdf:Statement }")
        assert isinstance(g, Graph)
        assert len(set(g.subjects(RDF.type, RDF.Statement))) == len(TRIPLES)
