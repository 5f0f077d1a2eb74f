"""`kgenrich run --push URL` (settings `push.endpoint`): the enrich flow pushes its graphs to a
real `oxigraph serve` after the export, the report counts what it sent, a later run's
retraction reaches the server as the run's own graph store records it, and the endpoint's
credentials reach neither the report nor Prefect's stored flow-run parameters."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest

from kgenrich.data import ontology
from kgenrich.flows.enrich import EnrichInputs, enrich
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.kg.namespace import KGN_IRI
from kgenrich.kg.store import GraphStore
from kgenrich.pipeline.report import RunReport
from kgenrich.settings import Settings
from kgenrich.testing.oxigraph import Oxigraph

DATA = Path(__file__).resolve().parents[1] / "data"
BASE = "https://kgenrich.dev/id/"


def _catalog(path: Path, *, drop: str | None = None) -> Path:
    with (DATA / "catalog.csv").open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["id"] != drop]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _run(tmp_path: Path, catalog: Path, name: str, endpoint: str) -> RunReport:
    inputs = EnrichInputs(
        catalog=catalog, ontology=ontology("movies"), out_dir=tmp_path / "out",
        seed=DATA / "seed.tsv", run_name=name, store=tmp_path / "store",
        mapping=CatalogMapping(text=("description",),
                               attributes={"director": "directed_by", "genres": "has_genre"}))
    settings = Settings(llm={"backend": "fake", "cache_dir": None},
                        verify={"epochs": 5, "dim": 16}, reports_dir=tmp_path / "reports",
                        push={"endpoint": endpoint})
    return enrich(inputs, settings)


def test_run_pushes_its_graphs_and_then_its_retractions(
    tmp_path: Path, oxigraph: Oxigraph
) -> None:
    from prefect.client.orchestration import get_client

    endpoint = oxigraph.store.replace("http://", "http://kg:hunter22@")
    first = _run(tmp_path, _catalog(tmp_path / "a.csv"), "one", endpoint)
    on_server = oxigraph.counts()
    assert first.exports["push"] == {g: on_server.get(g, 0) for g in first.exports["push"]}
    assert on_server[BASE + "graph/seed"] > 0 and on_server["default"] > 0
    assert oxigraph.select(f'SELECT ?st WHERE {{ ?st <{KGN_IRI}itemId> "m9" }}')

    # m9 leaves the catalog: the second run retracts it, and its push carries that
    second = _run(tmp_path, _catalog(tmp_path / "b.csv", drop="m9"), "two", endpoint)
    on_server = oxigraph.counts()
    assert second.exports["push"] == {g: on_server.get(g, 0) for g in second.exports["push"]}
    assert not oxigraph.select(
        f'SELECT ?st WHERE {{ {{ ?st <{KGN_IRI}itemId> "m9" }} UNION {{ GRAPH ?g '
        f'{{ ?st <{KGN_IRI}itemId> "m9" }} FILTER(?g != <{BASE}graph/retracted>) }} }}')
    # the same retracted graph as the run's own graph store holds, quad for quad
    with GraphStore.open(tmp_path / "store") as store:
        assert on_server[BASE + "graph/retracted"] == store.count(by="graph")["retracted"] > 0

    written = "".join((tmp_path / "out" / f).read_text() for f in ("report.json", "report.md"))
    assert "hunter22" not in written

    async def parameters() -> str:
        async with get_client() as client:
            runs = await client.read_flow_runs()
            return json.dumps([r.parameters for r in runs], default=str)

    assert "hunter22" not in asyncio.run(parameters())


def test_served_runs_read_the_push_endpoint_from_their_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kgenrich.flows.serve import PUSH_ENDPOINT_ENV, deployment_parameters

    inputs = EnrichInputs(catalog=DATA / "catalog.csv", ontology=ontology("movies"),
                          out_dir=tmp_path / "out", mapping=CatalogMapping())
    settings = Settings(push={"endpoint": "http://kg:hunter22@127.0.0.1:9/store"})
    params = deployment_parameters(inputs, settings)
    assert "hunter22" not in json.dumps(params) and "endpoint" not in params["settings"]["push"]
    monkeypatch.setenv(PUSH_ENDPOINT_ENV, "http://kg:from-env@127.0.0.1:9/store")
    run_settings = enrich.validate_parameters(params)["settings"]
    assert run_settings.push.endpoint.get_secret_value() == "http://kg:from-env@127.0.0.1:9/store"
