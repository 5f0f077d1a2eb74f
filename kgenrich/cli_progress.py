"""Rich progress bars for `kgenrich.progress` events: one bar per reader, LLM stage and KGE
training, with done/total, rate, time left and a note (cached answers, failed items, loss).

Drawn only on a terminal with `--log-format plain`: off a terminal (cron, CI, pipes) the
throttled log lines are the record, and a bar redrawn with carriage returns would garble them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from kgenrich import progress
from kgenrich.cli_logging import LogFormat


class _Rate(ProgressColumn):
    """Units per second, in the task's own unit (answers/s, epochs/s, lines/s)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("")
        return Text(f"{speed:.3g} {task.fields.get('unit', '')}/s", style="progress.data.speed")


class BarSink:
    """A `kgenrich.progress` sink drawing one rich task per progress task name."""

    def __init__(self, bars: Progress) -> None:
        self.bars = bars
        self._ids: dict[str, object] = {}
        self._lock = threading.Lock()

    def __call__(self, update: progress.Update) -> None:
        with self._lock:
            task_id = self._ids.get(update.task)
            if task_id is None:
                task_id = self.bars.add_task(update.task, total=update.total, unit=update.unit,
                                             note=update.note)
                self._ids[update.task] = task_id
        total = update.done if update.finished else update.total
        self.bars.update(task_id, completed=update.done, total=total,  # type: ignore[arg-type]
                         note=update.note)


def make_bars(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        _Rate(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
    )


@contextlib.contextmanager
def progress_bars(log_format: LogFormat | str, console: Console) -> Iterator[None]:
    """Progress bars on `console` for the block when it is a terminal and the format is
    plain; otherwise nothing (the log lines carry the progress)."""
    if LogFormat(log_format) is not LogFormat.plain or not console.is_terminal:
        yield
        return
    with make_bars(console) as bars, progress.showing(BarSink(bars)):
        yield
