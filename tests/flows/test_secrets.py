"""The API key never leaves the LLM client: not in any log record (every logger, at DEBUG), not
in the logs, parameters or artifacts Prefect stores, and not in any file a run writes, even
when the endpoint echoes the key back in its error messages."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kgenrich.data import ontology
from kgenrich.flows.enrich import EnrichInputs, enrich
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.settings import Settings
from kgenrich.testing import TEST_KEY, ScriptedServer, http_error, per_relation

DATA = Path(__file__).resolve().parents[1] / "data"


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string still shows its parts
            message = f"{record.msg} {record.args}"
        extra = " ".join(repr(v) for k, v in vars(record).items()
                         if k not in ("msg", "args", "message"))
        self.lines.append(f"{record.name} {record.levelname} {message} {extra}")


@pytest.fixture
def all_logs() -> Iterator[_Everything]:
    """A DEBUG handler on the root and on every logger that does not propagate to it."""
    handler = _Everything()
    loggers = [logging.getLogger(), logging.getLogger("prefect"),
               *(lg for lg in logging.root.manager.loggerDict.values()
                 if isinstance(lg, logging.Logger) and not lg.propagate)]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)


@per_relation
def echo_key(body: dict[str, Any]) -> str:
    # A model whose answers quote the request: prompts never hold the key, so neither may this.
    return json.dumps({"tails": [], "facts": [], "entities": [], "echo": json.dumps(body)[:200]})


def test_key_in_no_log_artifact_parameter_or_file(tmp_path: Path, all_logs: _Everything) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    out, reports, cache = tmp_path / "out", tmp_path / "reports", tmp_path / "cache"
    inputs = EnrichInputs(
        catalog=DATA / "catalog.csv", ontology=ontology("movies"),
        out_dir=out, seed=DATA / "seed.tsv", run_name="secret",
        mapping=CatalogMapping(text=("description",),
                            attributes={"director": "directed_by", "genres": "has_genre",
                                        "country": "country_of_origin"}),
    )
    settings = Settings(
        llm={"backend": "openai", "base_url": None, "api_key": TEST_KEY, "model": "m",
             "cache_dir": str(cache), "backoff_s": 0.01, "max_retries": 1, "concurrency": 2},
        discover={"use_spacy": False, "use_llm": True},
        complete={"relations": ("directed_by",), "samples": 1},
        verify={"epochs": 2, "dim": 8},
        reports_dir=reports,
    )
    with ScriptedServer(reply=echo_key) as server:
        # endpoints that echo the key in their errors: retried (5xx) and final (401)
        server.queue(http_error(500, f"upstream rejected key {TEST_KEY}"),
                     http_error(401, f"Incorrect API key provided: {TEST_KEY}"),
                     http_error(503, f"bearer {TEST_KEY} overloaded"))
        settings = settings.model_copy(update={"llm": settings.llm.model_copy(
            update={"base_url": server.base_url})})
        state = enrich(inputs, settings, return_state=True)
        assert server.requests and all(
            r.headers.get("authorization") == f"Bearer {TEST_KEY}" for r in server.requests), \
            "the key does reach the endpoint (so the scan below is meaningful)"
    report = state.result()
    assert report.totals["llm_calls"] > 0

    # every log record, from every logger, at DEBUG
    assert len(all_logs.lines) > 20
    leaks = [line for line in all_logs.lines if TEST_KEY in line]
    assert not leaks, leaks[:3]
    # the echoing errors did reach the logs, scrubbed
    assert any("Incorrect API key provided: ***" in line for line in all_logs.lines)

    # what Prefect stored: the run's parameters, its logs, its artifacts
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[flow_run_id])))
        logs = client.read_logs(log_filter=LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        artifacts = client.read_artifacts()
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[flow_run_id])))
    assert runs and artifacts
    stored = {
        "parameters": json.dumps([r.parameters for r in runs], default=str),
        "logs": "\n".join(log.message for log in logs),
        "artifacts": "\n".join(f"{a.key} {a.description} {a.data}" for a in artifacts),
        "task runs": "\n".join(t.model_dump_json() for t in task_runs),
    }
    for where, text in stored.items():
        assert TEST_KEY not in text, where
    # the masked form may appear (SecretStr's), the key never
    assert "api_key" not in stored["parameters"] or "**********" in stored["parameters"]

    # every file the run wrote, binary ones (the state store) included
    files = [p for root in (out, reports, cache) for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "report.md" for p in files)
    for path in files:
        assert TEST_KEY.encode() not in path.read_bytes(), path
