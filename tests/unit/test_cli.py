"""The CLI's option handling: `--set` on every command that loads settings, and a bad setting
stops with exit code 2 before logging, Prefect or any flow is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kgenrich import cli
from kgenrich.flows.io import write_exports
from kgenrich.settings import ExportSettings

CATALOG = Path(__file__).parents[1] / "data" / "catalog.csv"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    def too_late(*args: object) -> None:
        raise AssertionError("settings must be validated before logging and Prefect load")

    monkeypatch.setattr(cli, "_setup_logging", too_late)
    return CliRunner()


def _fails(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli.app, list(args))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return " ".join(result.output.split())  # rich wraps long lines


@pytest.mark.parametrize("command", ["run", "serve"])
def test_unknown_key_stops_run_and_serve(runner: CliRunner, command: str) -> None:
    out = _fails(runner, command, "--catalog", str(CATALOG), "--set", "complete.sampels=1")
    assert "complete.sampels: unknown setting" in out


@pytest.mark.parametrize("command", ["run", "serve"])
def test_misspelt_pykeen_model_stops_run_and_serve(runner: CliRunner, command: str) -> None:
    out = _fails(runner, command, "--catalog", str(CATALOG), "--set", "verify.model=Complx")
    assert "verify.model: unknown PyKEEN model 'Complx'; did you mean 'ComplEx'" in out


def test_bad_flag_value_is_validated_like_set(runner: CliRunner) -> None:
    out = _fails(runner, "run", "--catalog", str(CATALOG), "--samples", "0")
    assert "complete.samples: Input should be greater than or equal to 1" in out


def test_misspelt_decision_stops_run_before_any_stage(runner: CliRunner) -> None:
    out = _fails(runner, "run", "--catalog", str(CATALOG),
                 "--set", 'export.include=["trusted","acepted"]')
    assert "export.include.1" in out and "'accepted'" in out


def test_export_checks_formats_and_decisions(runner: CliRunner, tmp_path: Path) -> None:
    out = _fails(runner, "export", str(tmp_path), "--out", str(tmp_path / "x"),
                 "--format", "turtel")
    assert "export.formats.0" in out and "'recbole'" in out
    out = _fails(runner, "export", str(tmp_path), "--out", str(tmp_path / "x"),
                 "--include", "acepted")
    assert "export.include.0" in out
    out = _fails(runner, "export", str(tmp_path), "--out", str(tmp_path / "x"),
                 "--set", "export.base_irl=x")
    assert "export.base_irl: unknown setting" in out


def test_demo_takes_set(runner: CliRunner) -> None:
    out = _fails(runner, "demo", "--set", "llm.backend=nope")
    assert "llm.backend" in out and "'embedded', 'openai' or 'fake'" in out


def test_malformed_set_is_an_error(runner: CliRunner) -> None:
    out = _fails(runner, "run", "--catalog", str(CATALOG), "--set", "complete.samples")
    assert "expected section.key=value" in out


@pytest.mark.parametrize("command", ["run", "serve", "export", "demo"])
def test_help_documents_set(command: str) -> None:
    result = CliRunner().invoke(cli.app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--set" in result.output and "section.key=VALUE" in result.output


def test_serve_has_runs_options_and_its_own() -> None:
    result = CliRunner().invoke(cli.app, ["serve", "--help"], env={"COLUMNS": "200"})
    for option in ("--catalog", "--set", "--backend", "--cron", "--pause-on-shutdown"):
        assert option in result.output


def test_write_exports_writes_only_the_chosen_formats(tmp_path: Path) -> None:
    written = write_exports(tmp_path, entities=[], triples=[], items=None, interactions=None,
                            settings=ExportSettings(formats=("nquads", "turtle")))
    # the writers' order, not the settings' order; triples.jsonl always, last
    assert list(written.paths) == ["turtle", "nquads", "jsonl"]
    assert all(path.exists() for path in written.paths.values())
    assert not (tmp_path / "graph.graphml").exists() and not (tmp_path / "recbole").exists()
