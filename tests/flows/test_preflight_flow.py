"""The enrich flow runs the same preflight as the CLI at its start, so a library caller's bad
mapping fails before any LLM call, with the CLI's one-line message."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgenrich.data import ontology
from kgenrich.flows.enrich import EnrichInputs, enrich
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.runs.preflight import PreflightError
from kgenrich.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data"


def test_flow_stops_on_an_attr_relation_the_ontology_lacks(tmp_path: Path) -> None:
    inputs = EnrichInputs(
        catalog=DATA / "catalog.csv", ontology=ontology("movies"), out_dir=tmp_path / "out",
        seed=DATA / "seed.tsv", run_name="test",
        mapping=CatalogMapping(text=("description",),
                               attributes={"director": "directed_by", "genres": "genre"}))
    settings = Settings(llm={"backend": "fake", "cache_dir": None},
                        reports_dir=tmp_path / "reports")
    with pytest.raises(PreflightError, match="attr genres=genre: relation 'genre' is not in the "
                       "ontology; did you mean 'has_genre'"):
        enrich(inputs, settings)
    assert not (tmp_path / "out" / "state.sqlite").exists()  # stopped before the state store
