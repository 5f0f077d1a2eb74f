"""Fixtures every test folder shares: the scripted OpenAI-compatible server and clients for it,
a real local Prefect server, Prefect's test harness, a real `oxigraph serve`, and the test
ontology."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kgenrich.data import ontology
from kgenrich.kg.ontology import load_ontology
from kgenrich.kg.records import Ontology
from kgenrich.testing import TEST_KEY, ClientFactory, ScriptedServer
from kgenrich.testing.oxigraph import Oxigraph, oxigraph_binary, oxigraph_server

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
