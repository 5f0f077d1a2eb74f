"""`kgenrich push` against a real `oxigraph serve` on 127.0.0.1 (PyPI's `oxigraph` ships it):
every graph arrives, a second push changes nothing, and a retraction recorded by the run
empties what it retracted and fills the retracted graph."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kgenrich import cli
from kgenrich.errors import PushError
from kgenrich.flows.io import write_exports
from kgenrich.kg.namespace import graph_iri
from kgenrich.kg.push import push_run
from kgenrich.kg.records import Decision, Entity, Provenance, SourceKind, Triple
from kgenrich.runs.bookkeeping import RetractionRow
from kgenrich.settings import ExportSettings
from kgenrich.testing.oxigraph import Oxigraph

BASE = "https://kgenrich.dev/id/"
ENTITIES = [
    Entity(id="item/1", label="Alien", type="Movie"),
    Entity(id="item/2", label="Heat", type="Movie"),
    Entity(id="person/ridley-scott", label="Ridley Scott", type="Person"),
    Entity(id="person/michael-mann", label="Michael Mann", type="Person"),
    Entity(id="genre/horror", label="Horror", type="Genre"),
    Entity(id="genre/crime", label="Crime", type="Genre"),
]


def _t(h: str, r: str, t: str, source: SourceKind, item: str, decision: Decision,
       conf: float | None = None) -> Triple:
    llm = source not in (SourceKind.SEED, SourceKind.CATALOG)
    return Triple(head=h, relation=r, tail=t, provenance=Provenance(
        source=source, item_id=item, model="qwen" if llm else None,
        prompt_version="v1" if llm else None, decision=decision,
        evidence="a film by Michael Mann" if source is SourceKind.EXTRACTED else None,
        scores={"confidence": conf, "nli": 0.5} if conf is not None else {}))


TRIPLES = [
    _t("item/1", "directed_by", "person/ridley-scott", SourceKind.SEED, "1", Decision.TRUSTED),
    _t("item/1", "has_genre", "genre/horror", SourceKind.CATALOG, "1", Decision.TRUSTED),
    _t("item/2", "has_genre", "genre/crime", SourceKind.CATALOG, "2", Decision.TRUSTED),
    _t("item/2", "directed_by", "person/michael-mann", SourceKind.EXTRACTED, "2",
       Decision.ACCEPTED, 0.93),
    _t("item/2", "has_genre", "genre/horror", SourceKind.COMPLETED, "2", Decision.REVIEW, 0.55),
    _t("item/1", "has_genre", "genre/crime", SourceKind.COMPLETED, "1", Decision.REVIEW, 0.61),
    _t("item/2", "starring", "person/ridley-scott", SourceKind.COMPLETED, "2",
       Decision.REJECTED, 0.1),
]
# README's query for the candidates waiting for review, wrapped for graph.nq's layout.
REVIEW_QUERY = f"""
PREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#>
PREFIX kge: <https://kgenrich.dev/ns#>
SELECT ?statement ?head ?relation ?tail ?confidence ?evidence WHERE {{
  GRAPH <{BASE}graph/candidates> {{
  ?statement a rdf:Statement ; kge:decision "review" ;
             rdf:subject ?head ; rdf:predicate ?relation ; rdf:object ?tail .
  OPTIONAL {{ ?statement kge:confidence ?confidence }}
  OPTIONAL {{ ?statement kge:evidence ?evidence }}
  }}
}}
ORDER BY DESC(?confidence)
"""


def _ground(server: Oxigraph) -> set[tuple[str, ...]]:
    """Every quad without a blank node (blank nodes are renamed by each load)."""
    rows = server.select("SELECT ?s ?p ?o ?g WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } }"
                        " FILTER(!isBlank(?s) && !isBlank(?o)) }")
    return {(r["s"], r["p"], r["o"], r.get("g", "")) for r in rows}


def _export(out: Path, triples: list[Triple]) -> None:
    write_exports(out, entities=ENTITIES, triples=triples, items=None, interactions=None,
                  settings=ExportSettings(formats=("nquads",)))


def _g(name: str) -> str:
    return str(graph_iri(BASE, name))


def test_push_round_trips_replaces_graphs_and_applies_retractions(
    oxigraph: Oxigraph, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _export(out, TRIPLES)
    store = oxigraph.store

    first = push_run(out, endpoint=store, base=BASE, timeout=30)
    counts = oxigraph.counts()
    assert counts == {**{g.graph: g.triples for g in first.graphs if g.triples},
                      "default": first.counts()["default"]}
    assert counts[_g("seed")] == 1 and counts[_g("catalog")] == 2
    assert counts[_g("extracted")] == 1 and _g("completed") not in counts  # nothing accepted
    assert _g("retracted") not in counts
    review = oxigraph.select(REVIEW_QUERY)
    assert [r["confidence"] for r in review] == ["0.61", "0.55"]
    assert {r["head"] for r in review} == {BASE + "item/1", BASE + "item/2"}

    before = _ground(oxigraph)
    again = push_run(out, endpoint=store, base=BASE, timeout=30)
    assert oxigraph.counts() == counts
    assert _ground(oxigraph) == before
    assert {g.action for g in again.graphs if g.triples} == {"replaced"}

    # The run retracted item 2 (it left the catalog): its triples are gone from the output and
    # recorded in retractions.jsonl, as flows/io.py writes it.
    gone = [t for t in TRIPLES if t.provenance.item_id == "2" and
            t.provenance.source is not SourceKind.SEED]
    _export(out, [t for t in TRIPLES if t not in gone])
    row = RetractionRow(run="r2", at=datetime(2026, 12, 1, 12, 0, tzinfo=UTC).isoformat(),
                        item_id="2", reason="removed from the catalog",
                        triples=[t.model_dump(mode="json") for t in gone])
    (out / "retractions.jsonl").write_text(row.model_dump_json() + "\n", encoding="utf-8")
    push_run(out, endpoint=store, base=BASE, timeout=30)
    after = oxigraph.counts()
    assert _g("extracted") not in after  # its only fact was item 2's: the graph was deleted
    assert after[_g("catalog")] == 1 and after[_g("seed")] == 1
    assert [r["head"] for r in oxigraph.select(REVIEW_QUERY)] == [BASE + "item/1"]
    events = oxigraph.select(f"""
        PREFIX prov: <http://www.w3.org/ns/prov#> PREFIX kge: <https://kgenrich.dev/ns#>
        SELECT ?ev ?item (COUNT(?st) AS ?n) WHERE {{ GRAPH <{_g("retracted")}> {{
          ?ev a prov:Invalidation ; kge:itemId ?item .
          ?st prov:qualifiedInvalidation ?ev }} }} GROUP BY ?ev ?item""")
    assert [(e["item"], int(e["n"])) for e in events] == [("2", len(gone))]
    # no statement of item 2 is left outside the retracted graph
    assert not oxigraph.select(f"""PREFIX kge: <https://kgenrich.dev/ns#>
        PREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#>
        SELECT ?st WHERE {{ {{ ?st a rdf:Statement ; kge:itemId "2" }} UNION
          {{ GRAPH ?g {{ ?st a rdf:Statement ; kge:itemId "2" }}
             FILTER(?g != <{_g("retracted")}>) }} }}""")
    retracted = _ground(oxigraph)
    push_run(out, endpoint=store, base=BASE, timeout=30)
    assert oxigraph.counts() == after and _ground(oxigraph) == retracted


def test_push_command_reports_graphs_and_fails_clearly(oxigraph: Oxigraph, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _export(out, TRIPLES)
    runner = CliRunner()
    ok = runner.invoke(cli.app, ["push", str(out), "--endpoint", oxigraph.store])
    assert ok.exit_code == 0, ok.output
    assert "graph/seed" in ok.output and oxigraph.counts()[_g("seed")] == 1

    # a path that is no Graph Store endpoint: the error names the graph and the status
    port = oxigraph.url.rsplit(":", 1)[1]
    bad = runner.invoke(cli.app, ["push", str(out), "--endpoint",
                                  f"http://user:s3cret@127.0.0.1:{port}/nope"])
    assert bad.exit_code == 2
    text = " ".join(bad.output.split())
    assert "HTTP 404" in text and "graph <" in text and "s3cret" not in text
    with pytest.raises(PushError) as err:
        push_run(out, endpoint=f"{oxigraph.url}/nope", base=BASE, timeout=30)
    assert err.value.status == 404 and err.value.graph is not None
