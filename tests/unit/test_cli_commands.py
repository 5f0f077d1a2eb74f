"""Every command through Typer's CliRunner: --version, defaults and choices in --help, flags that
read naturally, and each mistake as one line with exit code 2; `--help` loads neither Prefect
nor torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import get_args

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from kgenrich import cli

DATA = Path(__file__).parents[1] / "data"
CATALOG = DATA / "catalog.csv"
#: For runs that pass preflight: its LLM check then needs no model or server.
FAKE = {"KGENRICH_LLM__BACKEND": "fake"}
COMMANDS = [["run"], ["serve"], ["export"], ["demo"], ["query"], ["push"], ["init"],
            ["recommend", "train"], ["recommend", "evaluate"]]


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli.app, list(args), env={"COLUMNS": "200", **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def _one_line_error(*args: str, env: dict[str, str] | None = None) -> str:
    code, output = _invoke(*args, env=env)
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


@pytest.fixture(autouse=True)
def _no_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    def too_late(*args: object) -> None:
        raise AssertionError("a mistake must stop before logging and Prefect load")

    monkeypatch.setattr(cli, "_setup_logging", too_late)


# --------------------------------------------------------------------------- conventions


def test_version_is_the_package_s() -> None:
    code, output = _invoke("--version")
    assert code == 0 and output.strip() == f"kgenrich {version('kgenrich')}"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str]) -> None:
    code, output = _invoke(*command, "--help")
    assert code == 0 and "Usage:" in output
    assert "--no-no-" not in output


def test_no_flag_reads_no_no() -> None:
    def options(command: object) -> list[str]:
        names: list[str] = []
        for param in getattr(command, "params", []):
            names += [*param.opts, *param.secondary_opts]
        for sub in getattr(command, "commands", {}).values():
            names += options(sub)
        return names

    names = options(get_command(cli.app))
    assert "--no-llm" in names and "--dry-run" in names
    assert not [n for n in names if n.startswith("--no-no-")]


def test_run_help_shows_the_settings_defaults_and_choices() -> None:
    _, output = _invoke("run", "--help")
    flat = " ".join(output.replace("│", " ").split())
    for shown in ("inputs.out: Output folder", "[default: (out)]", "[default: (id)]",
                  "[default: (title)]", "[default: (|)]", "[default: (3)]",
                  "[default: (qwen2.5-coder-1.5b-instruct-q4)]",
                  "[default: (the packaged movies ontology)]", "[default: (embedded)]",
                  "with inputs, mapping and settings sections"):
        assert shown in flat, shown
    for choice in ("auto|tsv|nt|turtle|recbole|ripplenet|auxiliary",
                   "auto|csv|tsv|jsonl|parquet|recbole", "embedded|openai|fake"):
        assert choice in flat, choice


def test_choices_match_what_the_commands_accept() -> None:
    from kgenrich.cli_query import OutputFormat
    from kgenrich.recsys.params import PRESETS

    assert get_args(OutputFormat) == cli.QUERY_FORMATS
    assert set(cli.PRESETS) == set(PRESETS)


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["init", "--help"],
                                  ["recommend", "train", "--help"]])
def test_help_imports_neither_prefect_nor_torch(args: list[str]) -> None:
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from kgenrich import cli\n"
        f"result = CliRunner().invoke(cli.app, {args!r})\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'torch', 'pykeen'})\n"
        "print('heavy', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "heavy []" in done.stdout


# --------------------------------------------------------------------------- run and serve


@pytest.mark.parametrize("command", ["run", "serve"])
@pytest.mark.parametrize(("args", "env", "expected"), [
    ([], {}, "error: invalid settings: inputs.catalog: no catalog: give --catalog or set "
             "catalog in the config file's [inputs]"),
    (["--catalog", str(CATALOG), "--attr", "genres"], {},
     "error: invalid settings: mapping.attributes: --attr 'genres': expected COLUMN=RELATION"),
    (["--catalog", str(CATALOG), "--set", "complete.sampel=2"], {},
     "error: invalid settings: complete.sampel: unknown setting; did you mean "
     "complete.samples?"),
    (["--catalog", str(CATALOG)], {"KGENRICH_COMPLETE__SAMPEL": "9"},
     "error: invalid settings: complete.sampel: unknown setting; did you mean complete.samples? "
     "(from KGENRICH_COMPLETE__SAMPEL)"),
    (["--catalog", str(CATALOG), "--samples", "0"], {},
     "error: invalid settings: complete.samples: Input should be greater than or equal to 1"),
    (["--catalog", str(CATALOG), "--catalog-format", "xlsx"], {},
     "Invalid value for '--catalog-format': 'xlsx' is not one of 'auto', 'csv', 'tsv', 'jsonl', "
     "'parquet', 'recbole'."),
    (["--catalog", str(CATALOG), "--backend", "ollama"], {},
     "Invalid value for '--backend': 'ollama' is not one of 'embedded', 'openai', 'fake'."),
    (["--catalog", str(DATA / "nope.csv")], {}, "'--catalog': file"),
])
def test_run_mistake_is_one_line_and_exit_2(
    command: str, args: list[str], env: dict[str, str], expected: str
) -> None:
    assert expected in _one_line_error(command, *args, env=env)


@pytest.mark.parametrize("command", ["run", "serve"])
def test_malformed_config_is_one_line_naming_file_and_line(command: str, tmp_path: Path) -> None:
    config = tmp_path / "kgenrich.yaml"
    config.write_text("inputs:\n  catalog: [x\n", encoding="utf-8")
    line = _one_line_error(command, "--config", str(config))
    assert f"{config}:3: unreadable config file" in line


def test_config_file_holds_catalog_and_mapping(tmp_path: Path) -> None:
    shutil.copy(CATALOG, tmp_path / "items.csv")
    shutil.copy(DATA / "seed.tsv", tmp_path / "seed.tsv")
    (tmp_path / "run.yaml").write_text(
        "inputs: {catalog: items.csv, seed: seed.tsv}\n"
        "mapping:\n  text: [description]\n  attributes: {director: directed_by, "
        "genres: has_genre, country: country_of_origin, year: release_year}\n"
        "complete: {samples: 2}\n", encoding="utf-8")
    code, output = _invoke("run", "--config", str(tmp_path / "run.yaml"), "--dry-run", env=FAKE)
    assert code == 0, output
    # as test_cli's flags-only dry run: the file says the same
    assert "items: 10" in output
    assert "estimated LLM calls: 80 (discover 9, extract 9, complete 62)" in output
    # a flag beats the file
    code, output = _invoke("run", "--config", str(tmp_path / "run.yaml"), "--dry-run",
                           "--samples", "1", env=FAKE)
    assert code == 0, output
    assert "estimated LLM calls: 49 (discover 9, extract 9, complete 31)" in output


def test_serve_dry_run_checks_without_prefect(tmp_path: Path) -> None:
    code, output = _invoke("serve", "--catalog", str(CATALOG), "--seed", str(DATA / "seed.tsv"),
                           "--attr", "director=directed_by", "--attr", "genres=has_genre",
                           "--attr", "country=country_of_origin", "--dry-run", env=FAKE)
    assert code == 0, output
    assert "items: 10" in output


# --------------------------------------------------------------------------- the other commands


def test_export_rewrites_a_run_from_its_dump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_setup_logging", lambda *_: None)
    run_dir = tmp_path / "run"
    shutil.copytree(DATA / "golden_records", run_dir)
    code, output = _invoke("export", str(run_dir), "--out", str(tmp_path / "x"),
                           "--format", "turtle", "--no-llm")
    assert code == 0, output
    assert (tmp_path / "x" / "graph.ttl").is_file()
    assert not (tmp_path / "x" / "graph.nq").exists()


def test_export_mistakes(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[export]\nformats = ["ttl"]\n', encoding="utf-8")
    line = _one_line_error("export", str(tmp_path), "--out", str(tmp_path / "x"),
                           "--config", str(config))
    assert "export.formats.0" in line and f"(in {config})" in line
    assert "does not exist" in _one_line_error("export", str(tmp_path / "none"), "--out", "x")


def test_demo_mistakes() -> None:
    assert "'ollama' is not one of" in _one_line_error("demo", "--backend", "ollama")
    assert "complete.samples: Input should be greater than or equal to 1" in _one_line_error(
        "demo", "--samples", "0")


def test_query_on_a_store(tmp_path: Path) -> None:
    from kgenrich.kg.store import GraphStore

    GraphStore.open(tmp_path / "store").close()
    code, output = _invoke("query", str(tmp_path / "store"), "ASK { ?s ?p ?o }",
                           "--format", "json")
    assert code == 0, output
    assert "false" in output


def test_query_format_is_a_choice(tmp_path: Path) -> None:
    line = _one_line_error("query", str(tmp_path), "ASK {}", "--format", "yaml")
    assert "'yaml' is not one of 'table', 'json', 'csv'" in line


def test_push_without_endpoint_and_with_a_bad_config(tmp_path: Path) -> None:
    assert "no endpoint: pass --endpoint URL" in _one_line_error("push", str(tmp_path))
    config = tmp_path / "c.toml"
    config.write_text("[push]\ntimout_s = 5\n", encoding="utf-8")
    assert "push.timout_s: unknown setting; did you mean push.timeout_s?" in _one_line_error(
        "push", str(tmp_path), "--config", str(config))


@pytest.mark.parametrize("sub", ["train", "evaluate"])
def test_recommend_mistakes(sub: str, tmp_path: Path) -> None:
    line = _one_line_error("recommend", sub, str(DATA / "ripplenet"), "--preset", "movies")
    assert "'movies' is not one of 'movie', 'book'" in line
    assert "does not exist" in _one_line_error("recommend", sub, str(tmp_path / "none"))


def test_recommend_reads_the_export(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cli, "_setup_logging", lambda *_: None)
    # the fixture has a KG and no ratings: a one-line input error from the reader, not a crash
    code, output = _invoke("recommend", "evaluate", str(DATA / "ripplenet"), "--seeds", "1",
                           "--epochs", "1")
    assert code == 2, output
    assert "ratings_final" in output
