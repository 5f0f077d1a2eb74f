"""The enrich flow under Prefect's test harness (a real ephemeral API on SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest
import rdflib

from kgenrich.data import ontology
from kgenrich.errors import InputError
from kgenrich.flows.enrich import EnrichInputs, enrich
from kgenrich.flows.io import read_run
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.kg.records import Decision, SourceKind
from kgenrich.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data"


def _inputs(tmp_path: Path, catalog: Path = DATA / "catalog.csv") -> EnrichInputs:
    return EnrichInputs(
        catalog=catalog,
        ontology=ontology("movies"),
        out_dir=tmp_path / "out",
        seed=DATA / "seed.tsv",
        run_name="test",
        mapping=CatalogMapping(text=("description",),
                            attributes={"director": "directed_by", "genres": "has_genre",
                                        "country": "country_of_origin"}),
    )


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        llm={"backend": "fake", "cache_dir": None},
        verify={"epochs": 5, "dim": 16},
        reports_dir=tmp_path / "reports",
    )


def test_flow_writes_every_export_and_report(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    report = enrich(_inputs(tmp_path), _settings(tmp_path))
    out = tmp_path / "out"
    for name in ("graph.ttl", "graph.nq", "graph.graphml", "triples.jsonl", "entities.jsonl",
                 "ripplenet/kg_final.txt", "ripplenet/item_index2entity_id.txt",
                 "recbole/kgenrich/kgenrich.kg", "recbole/kgenrich/kgenrich.link", "report.md"):
        assert (out / name).is_file(), name
    assert (tmp_path / "reports" / "test" / "report.md").is_file()
    # what the recommender writers dropped for their consumers reaches the report
    assert {"ripplenet", "recbole"} <= set(report.exports)
    assert "dropped_items" in report.exports["ripplenet"]
    assert "## Exports" in (out / "report.md").read_text(encoding="utf-8")
    g = rdflib.Graph().parse(out / "graph.ttl", format="turtle")
    assert len(g) > 0
    ds = rdflib.Dataset()
    ds.parse(out / "graph.nq", format="nquads")
    entities, triples = read_run(out)
    assert {t.provenance.source for t in triples} >= {SourceKind.SEED, SourceKind.CATALOG}
    assert all(t.provenance.decision is Decision.TRUSTED for t in triples
               if t.provenance.source in (SourceKind.SEED, SourceKind.CATALOG))
    stages = {s.stage for s in report.stages}
    assert {"catalog", "discover", "extract", "complete", "verify"} <= stages
    assert report.totals["llm_calls"] > 0

    async def artifacts() -> list[str]:
        async with get_client() as client:
            found = await client.read_artifacts()
            return [a.key or "" for a in found]

    import asyncio

    assert "enrich-report" in asyncio.run(artifacts())


def test_flow_bad_catalog_fails_with_location_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        enrich(_inputs(tmp_path, DATA / "malformed" / "dup_id.csv"), _settings(tmp_path))
    assert "dup_id.csv" in str(err.value)
    assert err.value.line is not None
    assert not (tmp_path / "out").exists()
