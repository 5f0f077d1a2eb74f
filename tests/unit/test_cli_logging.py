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
