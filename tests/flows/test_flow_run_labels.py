"""A CLI run as the Prefect UI shows it: named after `--run-name`, tagged `kgenrich` and the
catalog's name, with its address printed and the package's log lines in its logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from kgenrich.cli_flowrun import run_enrich
from kgenrich.cli_prefect import PACKAGE_LOGGER
from kgenrich.data import ontology
from kgenrich.flows.enrich import EnrichInputs
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def package_logs_to_api() -> Iterator[None]:
    """What PREFECT_LOGGING_EXTRA_LOGGERS=kgenrich makes Prefect do on import (the test process
    imported Prefect long before; tests/unit/test_cli_prefect.py checks the setting itself)."""
    ours = logging.getLogger(PACKAGE_LOGGER)
    added = [h for h in logging.getLogger("prefect.extra").handlers if h not in ours.handlers]
    level = ours.level
    for handler in added:
        ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    yield
    for handler in added:
        ours.removeHandler(handler)
    ours.setLevel(level)


def test_cli_run_is_named_tagged_and_logs_to_its_flow_run(
    tmp_path: Path, package_logs_to_api: None
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    inputs = EnrichInputs(
        catalog=DATA / "catalog.csv", ontology=ontology("movies"), out_dir=tmp_path / "out",
        seed=DATA / "seed.tsv", run_name="nightly-films",
        mapping=CatalogMapping(text=("description",),
                               attributes={"director": "directed_by", "genres": "has_genre",
                                           "country": "country_of_origin"}))
    settings = Settings(llm={"backend": "fake", "cache_dir": None},
                        verify={"epochs": 5, "dim": 16}, reports_dir=tmp_path / "reports")
    report, url = run_enrich(inputs, settings)
    assert report.run == "nightly-films"
    assert url is not None and "/runs/flow-run/" in url  # the harness is a server
    flow_run_id = UUID(url.rsplit("/", 1)[-1])
    for handler in logging.getLogger(PACKAGE_LOGGER).handlers:
        if isinstance(handler, APILogHandler):
            handler.flush()  # the API log worker sends in batches
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    assert flow_run.name == "nightly-films"
    assert {"kgenrich", "catalog"} <= set(flow_run.tags)
    ours = [log for log in logs if log.name.startswith(f"{PACKAGE_LOGGER}.")]
    assert ours, sorted({log.name for log in logs})
    assert any(log.message.startswith("read ") and "items" in log.message for log in ours)
