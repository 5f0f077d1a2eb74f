"""Progress events (kgenrich.progress) from readers, the stage engine, the LLM client and KGE
training, and the CLI's rich bars that draw them."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import BaseModel
from rich.console import Console

from kgenrich import progress
from kgenrich.cli_logging import LogFormat
from kgenrich.cli_progress import BarSink, make_bars, progress_bars
from kgenrich.kg.io.catalog import CatalogMapping, read_catalog
from kgenrich.kg.records import Item, StageResult, StageStats
from kgenrich.pipeline.llm.base import LLMRequest, Message
from kgenrich.pipeline.llm.fake import FakeLLM
from kgenrich.runs.engine import run_stage
from kgenrich.runs.outcomes import ChunkOutcome, split_outcome
from kgenrich.runs.state import StateStore
from kgenrich.verification.kge import train_verifier


@pytest.fixture
def events() -> Iterator[list[progress.Update]]:
    seen: list[progress.Update] = []
    with progress.showing(seen.append):
        yield seen


def _of(events: list[progress.Update], task: str) -> list[progress.Update]:
    return [e for e in events if e.task == task]


def test_no_sink_is_a_no_op_and_a_broken_sink_does_not_break_the_caller() -> None:
    progress.report("x", done=1, total=2, unit="items")  # nobody listening

    def broken(update: progress.Update) -> None:
        raise RuntimeError("display bug")

    seen: list[progress.Update] = []
    with progress.showing(broken), progress.showing(seen.append):
        progress.report("x", done=1, total=2, unit="items")
    assert [e.done for e in seen] == [1]
    progress.report("x", done=2, total=2, unit="items")  # unsubscribed
    assert len(seen) == 1


def test_counted_yields_everything_and_ends_with_the_total(
    events: list[progress.Update],
) -> None:
    assert list(progress.counted(range(5), "reading f", unit="lines", every_s=0.0)) == [0, 1, 2,
                                                                                         3, 4]
    last = _of(events, "reading f")[-1]
    assert (last.done, last.total, last.finished) == (5, 5, True)


def test_reading_a_catalog_reports_its_rows(
    tmp_path: Path, events: list[progress.Update]
) -> None:
    f = tmp_path / "items.csv"
    f.write_text("id,title\n" + "".join(f"{i},Film {i}\n" for i in range(30)), encoding="utf-8")
    read_catalog(f, mapping=CatalogMapping())
    last = _of(events, "reading items.csv")[-1]
    assert (last.done, last.finished, last.unit) == (30, True, "lines")


def _job(chunk: list[Item]) -> ChunkOutcome:
    return split_outcome("discover", [it.id for it in chunk],
                         StageResult(kept=(), stats=StageStats()), {})


def test_the_engine_reports_items_per_finished_chunk(
    tmp_path: Path, events: list[progress.Update]
) -> None:
    items = [Item(id=f"m{i}", title=f"Film {i}") for i in range(7)]
    with ThreadPoolExecutor(max_workers=2) as pool, \
            StateStore.open(tmp_path / "state.sqlite") as state:
        run_stage(state, run="r", stage="discover", items=items,
                  wanted={it.id: "fp" for it in items}, chunk_size=3, window=2,
                  submit=lambda chunk: pool.submit(_job, chunk))
    mine = _of(events, "discover")
    assert mine[0].done == 0 and all(e.total == 7 and e.unit == "items" for e in mine)
    steps = [b.done - a.done for a, b in zip(mine, mine[1:], strict=False)]
    assert sorted(steps) == [1, 3, 3]  # one event per chunk, in whatever order they finish
    assert mine[-1].done == 7 and mine[-1].finished and not any(e.finished for e in mine[:-1])


class _Answer(BaseModel):
    value: str = ""


def _ask(i: int) -> LLMRequest[_Answer]:
    messages: tuple[Message, ...] = ({"role": "user", "content": f"q{i}"},)
    return LLMRequest(messages=messages, schema=_Answer, stage="extract", item_id=str(i))


def test_llm_answers_add_up_over_batches_of_one_stage(events: list[progress.Update]) -> None:
    # chunks are separate batches: the bar counts the stage's answers over all of them
    llm = FakeLLM(lambda messages, schema: json.dumps({}))
    llm.complete_many([_ask(i) for i in range(3)])
    llm.complete_many([_ask(i) for i in range(3, 5)])
    mine = _of(events, "extract LLM")
    assert mine[-1].done == 5 and mine[-1].total == 5
    assert [e.done for e in mine] == sorted(e.done for e in mine)


def test_kge_training_reports_every_epoch_and_closes(events: list[progress.Update]) -> None:
    triples = [(f"m{i}", "genre", f"g{i % 3}") for i in range(12)]
    train_verifier(triples, model="TransE", dim=4, epochs=3, seed=0)
    mine = _of(events, "KGE training")
    assert [e.done for e in mine] == [0, 1, 2, 3, 3]
    assert mine[1].note.startswith("loss ") and mine[-1].finished


def test_bars_draw_done_total_and_note() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with make_bars(console) as bars:
        sink = BarSink(bars)
        sink(progress.Update("extract LLM", 3, 4, "answers", "1 cached"))
        sink(progress.Update("KGE training", 2, 10, "epochs", "loss 0.5"))
    text = out.getvalue()
    assert "extract LLM" in text and "3/4" in text and "1 cached" in text
    assert "KGE training" in text and "2/10" in text and "loss 0.5" in text


@pytest.mark.parametrize(("terminal", "fmt", "drawn"), [
    (True, LogFormat.plain, True), (False, LogFormat.plain, False), (True, LogFormat.json, False),
])
def test_bars_only_on_a_terminal_with_plain_logs(terminal: bool, fmt: LogFormat,
                                                 drawn: bool) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=120)
    with progress_bars(fmt, console):
        progress.report("discover", done=1, total=2, unit="items", finished=False)
    assert ("discover" in out.getvalue()) is drawn
