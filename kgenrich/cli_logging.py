"""The CLI's log handler: rich on a terminal, one plain line per record off it (cron, CI,
pipes: nothing wraps), or one JSON object per line with `--log-format json`. Imports no Prefect."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import TextIO

from rich.console import Console
from rich.logging import RichHandler


class LogFormat(StrEnum):
    """`--log-format` values."""

    plain = "plain"
    json = "json"


PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message (+ exc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def log_handler(log_format: LogFormat | str, console: Console,
                stream: TextIO | None = None) -> logging.Handler:
    """The handler for `log_format`; `plain` is rich only when `stream` (default: stderr) is a
    terminal, since rich wraps lines at the console width and breaks grep and log collectors."""
    stream = stream if stream is not None else sys.stderr
    if LogFormat(log_format) is LogFormat.json:
        handler: logging.Handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
    elif stream.isatty():
        handler = RichHandler(console=console, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    return handler
