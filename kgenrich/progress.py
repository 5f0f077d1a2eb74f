"""Progress of long steps (reading, each LLM stage, KGE training) as plain events.

Library code at any layer calls `report(...)`; it imports nothing and draws nothing. A front end
subscribes with `showing(sink)`: the CLI draws rich progress bars on a terminal
(`kgenrich.cli_progress`), tests collect the events. With no sink, `report` costs one lock and a
list copy, so library code never needs to know whether anyone is watching. Log lines (throttled
by the callers) stay the record for cron, CI and the Prefect UI.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar


@dataclass(frozen=True)
class Update:
    """Where one long step is: `done` of `total` `unit`s (total None: not known in advance)."""

    task: str
    done: int
    total: int | None
    unit: str
    note: str = ""
    finished: bool = False


Sink = Callable[[Update], None]

_lock = threading.Lock()
_sinks: list[Sink] = []


def report(task: str, *, done: int, total: int | None, unit: str, note: str = "",
           finished: bool = False) -> None:
    """Tell every subscribed sink where `task` is. A sink that raises is the sink's bug and
    must not fail the run, so its error is swallowed."""
    with _lock:
        sinks = list(_sinks)
    if not sinks:
        return
    update = Update(task, done, total, unit, note, finished)
    for sink in sinks:
        try:
            sink(update)
        except Exception:  # noqa: BLE001, S112 - a display must never break the run
            continue


@contextmanager
def showing(sink: Sink) -> Iterator[None]:
    """Subscribe `sink` for the duration of the block."""
    with _lock:
        _sinks.append(sink)
    try:
        yield
    finally:
        with _lock:
            _sinks.remove(sink)


class Throttle:
    """True at most once every `every_s` seconds (and on the first call), for log lines that
    accompany progress events without flooding the log."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._last: float | None = None

    def __call__(self) -> bool:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.every_s:
            return False
        self._last = now
        return True


T = TypeVar("T")


def counted(items: Iterable[T], task: str, *, unit: str, every_s: float = 0.25) -> Iterator[T]:
    """`items` unchanged, with a progress event every `every_s` seconds and one at the end (a
    reader's lines or rows; the total is not known in advance)."""
    due = Throttle(every_s)
    due()
    n = 0
    for n, item in enumerate(items, start=1):  # noqa: B007 - n is read after the loop
        yield item
        if due():
            report(task, done=n, total=None, unit=unit)
    report(task, done=n, total=n, unit=unit, finished=True)
