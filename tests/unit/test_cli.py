"""The CLI's option handling: `--set` on every command that loads settings, and a bad setting
stops with exit code 2 before logging, Prefect or any flow is loaded."""

from __future__ import annotations

import subprocess
import sys
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


# --------------------------------------------------------------------------- preflight

DATA = CATALOG.parent
GOOD = ["--catalog", str(CATALOG), "--text-col", "description", "--seed", str(DATA / "seed.tsv"),
        "--attr", "director=directed_by", "--attr", "genres=has_genre",
        "--attr", "country=country_of_origin", "--attr", "year=release_year"]


@pytest.mark.parametrize(("args", "expected"), [
    (["--attr", "genres=genre"],
     "error: attr genres=genre: relation 'genre' is not in the ontology; "
     "did you mean 'has_genre'?"),
    # the flag accepts exactly the seed reader's formats (a config file's value: test_cli_run)
    (["--seed-format", "ttl"],
     "Invalid value for '--seed-format': 'ttl' is not one of 'auto', 'tsv', 'nt', 'turtle', "
     "'recbole', 'ripplenet', 'auxiliary'."),
    (["--set", "verify.review_band=[0.7,0.3]"],
     "error: invalid settings: verify.review_band: expected 0 <= low <= high <= 1"),
    (["--set", 'complete.relations=["stars"]'],
     "error: complete.relations: relation 'stars' is not in the ontology"),
    (["--text-col", "plot"], "field 'plot'; column missing from header"),
])
@pytest.mark.parametrize("command", ["run", "serve"])
def test_preflight_mistake_is_one_line_and_exit_2(
    runner: CliRunner, command: str, args: list[str], expected: str
) -> None:
    assert expected in _fails(runner, command, *GOOD, *args)


def test_too_few_trusted_triples_stop_before_any_llm_call(runner: CliRunner) -> None:
    out = _fails(runner, "run", "--catalog", str(CATALOG), "--attr", "genres=has_genre")
    assert "error: verify: verification needs at least 20 trusted triples, the seed and " \
           "catalog give" in out


def test_wrong_list_separator_warns(runner: CliRunner) -> None:
    result = runner.invoke(cli.app, ["run", *GOOD, "--list-sep", ",", "--dry-run"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "warning: attr column 'genres': no cell splits on the list separator ','" in out


def test_dry_run_prints_what_the_run_would_ask(runner: CliRunner) -> None:
    result = runner.invoke(cli.app, ["run", *GOOD, "--dry-run", "--set", "complete.samples=2"])
    assert result.exit_code == 0, result.output
    assert "items: 10" in result.output
    assert "gaps (items lacking a relation): directed_by 1, original_language 10, " \
           "starring 10, written_by 10" in result.output
    assert "estimated LLM calls: 80 (discover 9, extract 9, complete 62)" in result.output


def test_dry_run_never_imports_prefect() -> None:
    script = (
        "import sys\n"
        "from kgenrich import cli\n"
        f"sys.argv = ['kgenrich', 'run', *{GOOD!r}, '--dry-run']\n"
        "try:\n"
        "    cli.app()\n"
        "except SystemExit as exit:\n"
        "    assert 'prefect' not in sys.modules, 'prefect imported'\n"
        "    print('exit', exit.code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "exit 0" in done.stdout and "estimated LLM calls" in done.stdout


def test_a_correct_run_passes_preflight(monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[bool] = []

    def stop(verbose: bool, *_: object) -> None:
        reached.append(verbose)
        raise SystemExit(0)  # where Prefect would load: preflight let the run through

    monkeypatch.setattr(cli, "_setup_logging", stop)
    result = CliRunner().invoke(cli.app, ["run", *GOOD])
    assert result.exit_code == 0, result.output
    assert reached == [False] and "error" not in result.output
