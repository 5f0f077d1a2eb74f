"""Scheduled runs against a real `prefect server start` on 127.0.0.1: `kgenrich serve`'s body
registers `enrich/<name>` with a cron schedule, the server's scheduler creates the runs, and the
stored parameters carry no secret (runs read the API key from their environment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from kgenrich.data import ontology
from kgenrich.errors import ConfigError
from kgenrich.flows.enrich import EnrichInputs, enrich
from kgenrich.flows.serve import (
    deployment_parameters,
    serve_command,
    stop_process_group,
)
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.settings import Settings
from kgenrich.testing import TEST_KEY

DATA = Path(__file__).resolve().parents[1] / "data"
ROOT = Path(__file__).resolve().parents[2]
CRON = "0 3 * * *"  # nightly: the scheduler creates runs, none falls due during the test

T = TypeVar("T")


def _inputs(tmp_path: Path) -> EnrichInputs:
    return EnrichInputs(
        catalog=DATA / "catalog.csv", ontology=ontology("movies"),
        out_dir=tmp_path / "out",
        mapping=CatalogMapping(text=("description",), attributes={"director": "directed_by"}),
    )


def _runnable_inputs(tmp_path: Path) -> EnrichInputs:
    """Inputs a whole run completes on: enough trusted triples (seed + attributes) to fit the
    verifier."""
    return EnrichInputs(
        catalog=DATA / "catalog.csv", ontology=ontology("movies"), out_dir=tmp_path / "out",
        seed=DATA / "seed.tsv", run_name="deployed",
        mapping=CatalogMapping(text=("description",),
                               attributes={"director": "directed_by", "genres": "has_genre",
                                           "country": "country_of_origin"}),
    )


def _runnable_settings(tmp_path: Path) -> Settings:
    return Settings(llm={"backend": "fake", "cache_dir": None}, verify={"epochs": 5, "dim": 16},
                    reports_dir=tmp_path / "reports")


def _wait(what: str, probe: Callable[[], T | None], timeout_s: float = 90.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1.0)


def test_parameters_hold_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(llm={"backend": "openai", "api_key": TEST_KEY,
                             "base_url": "http://user:pw-secret@127.0.0.1:9/v1"})
    params = deployment_parameters(_inputs(tmp_path), settings)
    blob = json.dumps(params)
    assert TEST_KEY not in blob and "**********" not in blob and "pw-secret" not in blob
    assert "api_key" not in params["settings"]["llm"]
    assert Path(params["inputs"]["catalog"]).is_absolute()
    assert Path(params["settings"]["reports_dir"]).is_absolute()
    # At run time the flow's own parameter validation reads the key from the environment.
    monkeypatch.setenv("KGENRICH_LLM__API_KEY", "sk-from-the-runs-env")
    monkeypatch.setenv("KGENRICH_LLM__BASE_URL", "http://127.0.0.1:9/v1")
    run_settings = enrich.validate_parameters(params)["settings"]
    assert run_settings.llm.api_key.get_secret_value() == "sk-from-the-runs-env"
    assert run_settings.llm.base_url == "http://127.0.0.1:9/v1"


def test_serve_refuses_without_server_or_with_bad_cron(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(updates={PREFECT_API_URL: None}), \
            pytest.raises(ConfigError, match="prefect server start"):
        serve_command(_inputs(tmp_path), Settings(), cron=CRON, name="x")
    # the harness's API URL is set here: only the cron is wrong
    with pytest.raises(ConfigError, match="invalid schedule"):
        serve_command(_inputs(tmp_path), Settings(), cron="every night", name="x")


def test_deployment_parameters_run_in_prefects_subprocess_runner(tmp_path: Path) -> None:
    # The path a deployment's runner takes: the flow pickled into a spawned process, validated
    # there against the stored JSON parameters. It used to fail in 0 s ("`EnrichModel` is not
    # fully defined"), as every scheduled run did.
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow_in_subprocess

    # Real classes, not strings: the pickled flow keeps no globals to resolve a name against.
    assert not any(isinstance(a, str) for a in enrich.fn.__annotations__.values())
    assert all(m.__pydantic_complete__ for m in (EnrichInputs, CatalogMapping, Settings))
    params = deployment_parameters(_runnable_inputs(tmp_path), _runnable_settings(tmp_path))
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(enrich, parameters=params)
        process = run_flow_in_subprocess(enrich, flow_run=flow_run, parameters=params)
        process.join(timeout=300)
        assert process.exitcode == 0
        state = client.read_flow_run(flow_run.id).state
    assert state is not None and state.is_completed(), state
    out = tmp_path / "out"
    assert (out / "graph.ttl").is_file() and (out / "triples.jsonl").is_file()


SERVE = """
import json, sys
from kgenrich.flows.enrich import EnrichInputs
from kgenrich.flows.serve import serve_command
from kgenrich.errors import ConfigError
from kgenrich.settings import Settings
inputs = EnrichInputs.model_validate_json(sys.argv[1])
settings = Settings.model_validate_json(sys.argv[4]) if len(sys.argv) > 4 else Settings()
sys.exit(serve_command(inputs, settings, cron=sys.argv[2], name=sys.argv[3]))
"""


def _serve_env(tmp_path: Path, api: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "serve-home"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                "KGENRICH_LLM__BACKEND": "fake", "KGENRICH_LLM__API_KEY": TEST_KEY,
                "KGENRICH_REPORTS_DIR": str(tmp_path / "reports")})
    return env


@pytest.mark.slow
def test_serve_registers_cron_deployment_and_scheduler_creates_runs(
    tmp_path: Path, local_prefect_api: str
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    api = local_prefect_api
    env = _serve_env(tmp_path, api)
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-c", SERVE, _inputs(tmp_path).model_dump_json(), CRON, "nightly"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        with temporary_settings(updates={PREFECT_API_URL: api}), \
                get_client(sync_client=True) as client:

            def deployment() -> Any:
                assert serve.poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    return client.read_deployment_by_name("enrich/nightly")
                except Exception:  # noqa: BLE001 - not registered yet (404)
                    return None

            dep = _wait("the deployment", deployment)
            assert [s.schedule.cron for s in dep.schedules] == [CRON]
            assert all(s.active for s in dep.schedules) and not dep.paused
            assert dep.entrypoint == "kgenrich.flows.enrich.enrich"

            def scheduled() -> list[Any]:
                return client.read_flow_runs(deployment_filter=DeploymentFilter(
                    id=DeploymentFilterId(any_=[dep.id])))

            runs = _wait("scheduled flow runs", scheduled)
            assert all(r.state is not None and r.state.is_scheduled() for r in runs)
            assert all(r.expected_start_time is not None
                       and (r.expected_start_time.hour, r.expected_start_time.minute)
                       == (3, 0) for r in runs)
            stored = json.dumps([dep.parameters, *(r.parameters for r in runs)])
            assert TEST_KEY not in stored and "**********" not in stored
            assert "api_key" not in dep.parameters["settings"]["llm"]
    finally:
        stop_process_group(serve)
        log.close()
    assert serve.poll() is not None
    with pytest.raises(ProcessLookupError):  # nothing left in the serve process group
        os.killpg(serve.pid, 0)


@pytest.mark.slow
def test_served_deployment_executes_a_triggered_run_to_completion(
    tmp_path: Path, local_prefect_api: str
) -> None:
    # Done-when of issue 14: a run of the served deployment, created through the API as the
    # scheduler, a UI Quick run or `prefect deployment run` would, completes and writes its graph.
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    api = local_prefect_api
    settings = _runnable_settings(tmp_path)
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-c", SERVE, _runnable_inputs(tmp_path).model_dump_json(), CRON,
         "nightly", settings.model_dump_json()],
        cwd=ROOT, env=_serve_env(tmp_path, api), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with temporary_settings(updates={PREFECT_API_URL: api}), \
                get_client(sync_client=True) as client:

            def deployment() -> Any:
                assert serve.poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    return client.read_deployment_by_name("enrich/nightly")
                except Exception:  # noqa: BLE001 - not registered yet (404)
                    return None

            _wait("the deployment", deployment)
            flow_run = run_deployment("enrich/nightly", timeout=0)

            def finished() -> Any:
                state = client.read_flow_run(flow_run.id).state
                return state if state is not None and state.is_final() else None

            state = _wait("the run to finish", finished, timeout_s=600)
            assert state.is_completed(), (state, (tmp_path / "serve.log").read_text()[-3000:])
    finally:
        stop_process_group(serve)
        log.close()
    out = tmp_path / "out"
    assert (out / "graph.ttl").is_file() and (out / "triples.jsonl").is_file()
    assert (out / "triples.jsonl").read_text().strip()
