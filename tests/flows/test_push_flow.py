"""`kgenrich run --push URL` (settings `push.endpoint`): the enrich flow pushes its graphs to a
real `oxigraph serve` after the export, the report counts what it sent, and the endpoint's
credentials reach neither the report nor Prefect's stored flow-run parameters."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from kgenrich.data import ontology
from kgenrich.flows.enrich import EnrichInputs, enrich
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.settings import Settings
from kgenrich.testing.oxigraph import Oxigraph

DATA = Path(__file__).resolve().parents[1] / "data"


def test_run_pushes_its_graphs_after_the_export(tmp_path: Path, oxigraph: Oxigraph) -> None:
    from prefect.client.orchestration import get_client

    endpoint = oxigraph.store.replace("http://", "http://kg:hunter22@")
    inputs = EnrichInputs(
        catalog=DATA / "catalog.csv", ontology=ontology("movies"), out_dir=tmp_path / "out",
        seed=DATA / "seed.tsv", run_name="push-test",
        mapping=CatalogMapping(text=("description",),
                               attributes={"director": "directed_by", "genres": "has_genre"}))
    settings = Settings(llm={"backend": "fake", "cache_dir": None},
                        verify={"epochs": 5, "dim": 16}, reports_dir=tmp_path / "reports",
                        push={"endpoint": endpoint})
    report = enrich(inputs, settings)

    on_server = oxigraph.counts()
    assert report.exports["push"] == {g: on_server.get(g, 0) for g in report.exports["push"]}
    assert on_server["https://kgenrich.dev/id/graph/seed"] > 0
    assert on_server["default"] > 0
    written = (tmp_path / "out" / "report.json").read_text() + \
        (tmp_path / "out" / "report.md").read_text()
    assert "hunter22" not in written

    async def parameters() -> str:
        async with get_client() as client:
            runs = await client.read_flow_runs()
            return json.dumps([r.parameters for r in runs], default=str)

    assert "hunter22" not in asyncio.run(parameters())
