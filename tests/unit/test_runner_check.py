"""The task runner is checked before anything expensive, without Prefect: an unknown kind, a
missing extra, worker processes without a Prefect server, and the embedded model asked from a
cluster elsewhere are one line each, and the CLI exits 2 with it before reading the catalog."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kgenrich import cli
from kgenrich.errors import ConfigError
from kgenrich.flows import runners
from kgenrich.flows.runners import check_runner
from kgenrich.settings import Settings, load_settings

API = "http://127.0.0.1:4200/api"
CATALOG = Path(__file__).parents[1] / "data" / "catalog.csv"


def _settings(**runner: Any) -> Settings:
    return Settings(task_runner=runner, llm={"backend": "openai",
                                             "base_url": "http://127.0.0.1:9/v1"})


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name in modules else real(name, *args)

    monkeypatch.setattr(runners.importlib.util, "find_spec", find_spec)


def test_the_default_thread_runner_needs_nothing() -> None:
    check_runner(Settings(), api_url=None)
    assert Settings().task_runner.kind == "thread"


def test_unknown_kind_fails_when_the_settings_load() -> None:
    with pytest.raises(ConfigError, match="task_runner.kind"):
        load_settings(None, flags={}, assignments=["task_runner.kind=spark"])


def test_worker_processes_need_a_prefect_server() -> None:
    import importlib.util

    # ray is an optional extra: without it, the missing package is the first error (tested above)
    kinds = ["dask"] + (["ray"] if importlib.util.find_spec("prefect_ray") else [])
    for kind in kinds:
        with pytest.raises(ConfigError, match="prefect server start"):
            check_runner(_settings(kind=kind), api_url=None)
    check_runner(_settings(kind="dask-threads"), api_url=None)  # one process: its own API
    with pytest.raises(ConfigError, match="prefect server start"):  # a cluster elsewhere
        check_runner(_settings(kind="dask-threads", address="tcp://10.0.0.5:8786"), api_url=None)


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "ray", "prefect_ray")
    with pytest.raises(ConfigError) as info:
        check_runner(_settings(kind="ray"), api_url=API)
    assert "pip install 'kgenrich[ray]'" in str(info.value) and "\n" not in str(info.value)
    _without(monkeypatch, "prefect_dask")
    with pytest.raises(ConfigError, match=r"kgenrich\[dask\]"):
        check_runner(_settings(kind="dask"), api_url=API)


def test_address_needs_a_cluster_kind_and_the_embedded_model_stays_on_this_host() -> None:
    with pytest.raises(ConfigError, match="needs task_runner.kind"):
        check_runner(_settings(address="tcp://127.0.0.1:8786"), api_url=API)
    embedded = Settings(task_runner={"kind": "dask", "address": "tcp://10.0.0.5:8786"})
    with pytest.raises(ConfigError, match="cannot reach"):
        check_runner(embedded, api_url=API)
    for here in ("tcp://127.0.0.1:8786", "localhost:8786"):
        check_runner(Settings(task_runner={"kind": "dask", "address": here}), api_url=API)


def test_checking_imports_no_prefect() -> None:
    code = ("import sys; from kgenrich.flows.runners import check_runner; "
            "from kgenrich.settings import Settings; "
            "check_runner(Settings(task_runner={'kind': 'dask'}), api_url='http://x/api'); "
            "assert 'prefect' not in sys.modules, 'prefect imported'")
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def cli_runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    def too_late(*args: object) -> None:
        raise AssertionError("must stop before logging and Prefect load")

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("must stop before reading the inputs")

    monkeypatch.setattr(cli, "_setup_logging", too_late)
    import kgenrich.cli_preflight as cp

    monkeypatch.setattr(cp, "preflight_inputs", no_reading)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_PROFILES_PATH", "/nonexistent/profiles.toml")
    return CliRunner()


@pytest.mark.parametrize(("args", "message"), [
    (["--task-runner", "dask"], "need a running Prefect server"),
    (["--task-runner", "spark"], "'spark' is not one of"),
    (["--task-runner", "thread", "--address", "tcp://127.0.0.1:8786"], "needs task_runner.kind"),
])
def test_cli_refuses_a_runner_that_cannot_run_with_one_line_and_exit_2(
    cli_runner: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    for command in ("run", "serve"):
        result = cli_runner.invoke(cli.app, [command, "--catalog", str(CATALOG), "--out",
                                             str(tmp_path / "out"), *args])
        text = " ".join(result.output.split())
        assert result.exit_code == 2, result.output
        assert message in text and text.count("error:") == 1, text
