"""`--log-format`: rich only on a terminal, one unwrapped plain line per record off it, and one
JSON object per line (time, level, logger, message) for cron and CI."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from rich.logging import RichHandler
from typer.testing import CliRunner

from kgenrich import cli
from kgenrich.cli_logging import LogFormat, log_handler

LONG = "a long progress line " * 20


def _record(msg: str = LONG) -> logging.LogRecord:
    return logging.LogRecord("kgenrich.flows.enrich", logging.INFO, __file__, 1, msg, None, None)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_is_one_object_per_line() -> None:
    stream = io.StringIO()
    log_handler(LogFormat.json, Console(), stream).handle(_record("fitted %s"))
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "message"}
    assert entry["level"] == "INFO" and entry["logger"] == "kgenrich.flows.enrich"
    assert entry["time"].endswith("+00:00")


def test_plain_off_a_tty_does_not_wrap() -> None:
    stream = io.StringIO()
    handler = log_handler("plain", Console(width=40), stream)
    assert not isinstance(handler, RichHandler)
    handler.handle(_record())
    (line,) = stream.getvalue().splitlines()
    assert line.endswith(f"INFO kgenrich.flows.enrich: {LONG}")


def test_plain_on_a_tty_is_rich() -> None:
    assert isinstance(log_handler("plain", Console(), _Tty()), RichHandler)


@pytest.mark.parametrize("command", ["run", "serve", "demo"])
def test_unknown_log_format_is_a_usage_error(command: str) -> None:
    result = CliRunner().invoke(cli.app, [command, "--log-format", "xml"])
    assert result.exit_code == 2
    assert "xml" in result.output


def test_setup_logging_json_reaches_stderr() -> None:
    # A subprocess: _setup_logging imports Prefect and replaces the root handlers.
    code = ("import logging; from kgenrich import cli; cli._setup_logging(False, 'json'); "
            "logging.getLogger('kgenrich.x').info('hello %d', 1); "
            "logging.getLogger('other').info('hidden')")
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300, check=True)
    entries = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [(e["logger"], e["message"]) for e in entries] == [("kgenrich.x", "hello 1")]


@pytest.mark.parametrize("url", [None, "http://127.0.0.1:4200/runs/flow-run/" + "0" * 36])
def test_end_of_run_names_the_flow_run_and_the_report(
    url: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / ("a-folder-name-long-enough-to-wrap-" * 3)
    cli._print_where(out, url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"report: {out / 'report.md'}  {out / 'report.html'}"  # unwrapped
    assert (f"flow run: {url}" in lines) == (url is not None)
    assert len(lines) == (2 if url else 1)


def _prefect_error(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:  # noqa: BLE001
        info = sys.exc_info()
    return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1,
                             "Encountered exception during execution: %r", (exc,), info)


def test_prefects_traceback_of_our_error_is_dropped_and_a_crash_is_kept() -> None:
    from kgenrich.errors import InputError

    quiet = cli._OursOrSevere(verbose=False)
    assert not quiet.filter(_prefect_error(InputError("bad", file="x.csv")))
    assert quiet.filter(_prefect_error(RuntimeError("a bug")))  # a crash keeps its traceback
    assert cli._OursOrSevere(verbose=True).filter(_prefect_error(InputError("bad", file="x")))


def test_a_corrupt_state_store_is_one_line_before_prefect_starts(tmp_path: Path) -> None:
    from kgenrich.cli_preflight import check_state
    from kgenrich.errors import KgenrichError

    check_state(tmp_path / "state.sqlite")  # missing: the run creates it
    assert not (tmp_path / "state.sqlite").exists()
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    with pytest.raises(KgenrichError, match="state store is corrupt"):
        check_state(bad)
