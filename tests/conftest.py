"""Fixtures every test folder shares: the scripted OpenAI-compatible server and clients for it,
a real local Prefect server, Prefect's test harness, a real `oxigraph serve`, the test
ontology, and a run report with its triples for the HTML report's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kgenrich.data import ontology
from kgenrich.kg.ontology import load_ontology
from kgenrich.kg.records import (
    Decision,
    Ontology,
    Provenance,
    Rejection,
    SourceKind,
    StageResult,
    StageStats,
    Triple,
)
from kgenrich.pipeline.report import RunReport, build_report
from kgenrich.testing import TEST_KEY, ClientFactory, ScriptedServer
from kgenrich.testing.oxigraph import Oxigraph, oxigraph_binary, oxigraph_server
from kgenrich.verification.scorers import Holdout

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

# Scheduler loops of seconds instead of a minute, so a test sees scheduled runs quickly.
FAST_SCHEDULER = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
    "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
}


@pytest.fixture(scope="session")
def movies() -> Ontology:
    """The test ontology: the shipped movies ontology (`kgenrich.data.ontology("movies")`)."""
    return load_ontology(ontology("movies"))


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """The scripted OpenAI-compatible server (`kgenrich.testing.ScriptedServer`), running, with
    the default reply; set `.reply`, `.queue(...)` faults or `.reject_formats` to script it."""
    with ScriptedServer() as running:
        yield running


@pytest.fixture
def make_client(server: ScriptedServer) -> Iterator[ClientFactory]:
    """Build an `OpenAICompatibleLLM` for `server`; fast retries unless overridden."""
    from kgenrich.pipeline.llm.openai_backend import OpenAICompatibleLLM

    created: list[OpenAICompatibleLLM] = []

    def factory(**overrides: Any) -> OpenAICompatibleLLM:
        args: dict[str, Any] = {
            "base_url": server.base_url,
            "api_key": TEST_KEY,
            "model": "scripted-model",
            "timeout_s": 5.0,
            "max_retries": 2,
            "backoff_s": 0.01,
            "concurrency": 1,
            "cache_dir": None,
            "max_calls": None,
            "max_tokens_total": None,
            "breaker_threshold": 5,
            "breaker_cooldown_s": 30.0,
            "breaker_window": 20,
            "breaker_failure_rate": 0.9,
        }
        args.update(overrides)
        llm = OpenAICompatibleLLM(**args)
        created.append(llm)
        return llm

    yield factory
    for llm in created:
        llm.close()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Prefect's temporary test server for the whole session (tests/flows uses it for all)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def local_prefect_api(tmp_path: Path) -> Iterator[str]:
    """API URL of a real `prefect server start` on 127.0.0.1 with its own PREFECT_HOME under
    `tmp_path` and a fast scheduler; it and its children are stopped afterwards."""
    from kgenrich.flows.serve import local_prefect_server

    with local_prefect_server(tmp_path / "server-home", env=FAST_SCHEDULER) as api:
        yield api


@pytest.fixture
def oxigraph(tmp_path: Path) -> Iterator[Oxigraph]:
    """`oxigraph serve` (PyPI's `oxigraph`, in the dev extra) on a free 127.0.0.1 port, on disk
    under `tmp_path`; skipped when the binary is not installed."""
    binary = oxigraph_binary()
    if binary is None:
        pytest.skip("no `oxigraph` server binary (pip install oxigraph, in the dev extra)")
    with oxigraph_server(binary, tmp_path / "oxigraph") as server:
        yield server


@dataclass(frozen=True)
class ReportPage:
    """What ``render_html`` takes: a report, the run's triples, their labels, a holdout."""

    report: RunReport
    triples: list[Triple]
    labels: dict[str, str]
    holdout: Holdout


#: a label the report must escape
HOSTILE_LABEL = "<script>alert('x')</script> & Co"


@pytest.fixture(scope="session")
def report_page() -> ReportPage:
    """A small run: every stage with rejections and LLM usage, triples of every decision with
    confidences and evidence, one entity whose label is markup, and a verifier holdout."""
    rng = np.random.default_rng(0)
    labels = {"item/1": "Alien", "item/2": "Man of Steel", "person/scott": "Ridley Scott",
              "person/snyder": "Zack Snyder", "person/x": HOSTILE_LABEL,
              "genre/horror": "Horror", "genre/drama": "Drama"}
    people = ["person/scott", "person/snyder", "person/x"]
    triples = [Triple(head="item/1", relation="has_genre", tail="genre/horror",
                      provenance=Provenance(source=SourceKind.CATALOG, item_id="1",
                                            decision=Decision.TRUSTED))]
    decisions = [Decision.ACCEPTED, Decision.REVIEW, Decision.REJECTED,
                 Decision.UNVERIFIED_NEW_ENTITY]
    for i in range(60):
        decision = decisions[i % 4]
        confidence = float(np.clip(rng.normal({Decision.ACCEPTED: 0.85, Decision.REVIEW: 0.55,
                                               Decision.REJECTED: 0.2}.get(decision, 0.4), 0.1),
                                   0, 1))
        triples.append(Triple(
            head=f"item/{1 + i % 2}", relation=("directed_by", "starring")[i % 3 == 0],
            tail=people[i % 3],
            provenance=Provenance(
                source=SourceKind.EXTRACTED, item_id=str(1 + i % 2), model="fake",
                evidence=f"... directed by {labels[people[i % 3]]} in {1970 + i} ...",
                scores={"confidence": confidence}, decision=decision)))
    stats = StageStats(llm_calls=12, cache_hits=3, prompt_tokens=4000, completion_tokens=900,
                       seconds=4.5)
    stages: dict[str, StageResult[Any]] = {
        "catalog": StageResult(kept=tuple(triples[:1]), rejected=(
            Rejection(stage="catalog", reason="relation not in ontology", item_id="1"),)),
        "extract": StageResult(kept=tuple(triples[1:]), stats=stats, rejected=(
            Rejection(stage="extract", reason="evidence not in text <b>", item_id="2"),
            Rejection(stage="extract", reason="schema violation", item_id="1"),
            Rejection(stage="extract", reason="schema violation", item_id="2"))),
        "complete": StageResult(stats=stats.model_copy(update={"seconds": 2.0})),
    }
    report = build_report("demo-run", stages, triples, wall_seconds=12.3,
                          extra={"llm model": "fake:scripted", "note": "<i>not markup</i>"})
    p = rng.uniform(0, 1, 400)
    holdout = Holdout(probability=tuple(float(v) for v in p),
                      labels=tuple(int(v) for v in rng.uniform(0, 1, 400) < p),
                      source="calibrator on the holdout")
    return ReportPage(report=report, triples=triples, labels=labels, holdout=holdout)
