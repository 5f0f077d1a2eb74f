"""Failures that say so, through the CLI: a locked or unusable output folder stops `kgenrich run`
with one line and exit 2 before logging, Prefect or any LLM call is loaded."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kgenrich import cli

CATALOG = Path(__file__).parents[1] / "data" / "catalog.csv"
HOLD = """
import sys, time
from pathlib import Path
from kgenrich.runs.lock import output_lock
with output_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    def too_late(*args: object) -> None:
        raise AssertionError("must stop before logging and Prefect load")

    monkeypatch.setattr(cli, "_setup_logging", too_late)
    return CliRunner()


@pytest.fixture
def held_out(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """An output folder whose lock another process holds, and that process's pid."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield out, proc.pid
    proc.kill()
    proc.wait()


def _run(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli.app, ["run", "--catalog", str(CATALOG), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, " ".join(result.output.split())


def test_second_run_on_a_locked_out_fails_at_once(runner: CliRunner,
                                                  held_out: tuple[Path, int]) -> None:
    out, pid = held_out
    code, text = _run(runner, "--out", str(out))
    assert code == 2
    assert f"output folder is in use by another run (pid {pid} on" in text
    assert text.count("error:") == 1


def test_out_that_is_a_file_fails_with_the_path(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("x")
    code, text = _run(runner, "--out", str(tmp_path / "out"))
    assert code == 2 and f"{tmp_path / 'out'}: the output folder is a file" in text


def test_dry_run_needs_no_lock(runner: CliRunner, held_out: tuple[Path, int]) -> None:
    """--dry-run writes nothing, so a running job on the same --out does not stop it."""
    out, _ = held_out
    data = CATALOG.parent
    code, text = _run(runner, "--out", str(out), "--dry-run", "--seed", str(data / "seed.tsv"),
                      "--attr", "director=directed_by", "--attr", "genres=has_genre")
    assert code == 0, text
    assert "in use by another run" not in text
