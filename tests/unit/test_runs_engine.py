"""The run engine (kgenrich.runs.engine) driven without Prefect: a thread pool's `submit`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from kgenrich.kg.records import Item, Mention, StageResult, StageStats
from kgenrich.runs.engine import chunk_window, run_stage
from kgenrich.runs.outcomes import ChunkOutcome, split_outcome
from kgenrich.runs.state import StateStore

ITEMS = [Item(id=f"m{i}", title=f"Film {i}") for i in range(7)]
WANTED = {it.id: f"fp-{it.id}" for it in ITEMS}


def _job(chunk: list[Item]) -> ChunkOutcome:
    """One mention per item; an item whose title says "broken" crashes its whole chunk."""
    if any("broken" in it.title for it in chunk):
        raise RuntimeError("chunk crashed")
    kept = tuple(Mention(item_id=it.id, label=it.title, type="Movie", found_by="test")
                 for it in chunk)
    return split_outcome("discover", [it.id for it in chunk],
                         StageResult(kept=kept, stats=StageStats(llm_calls=len(chunk))), {})


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def _submitter(
    pool: ThreadPoolExecutor, sent: list[list[str]]
) -> Callable[[list[Item]], Future[ChunkOutcome]]:
    def submit(chunk: list[Item]) -> Future[ChunkOutcome]:
        sent.append([it.id for it in chunk])
        return pool.submit(_job, chunk)

    return submit


def test_thread_pool_run_commits_every_chunk_and_merges_in_catalog_order(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    sent: list[list[str]] = []
    with StateStore.open(tmp_path / "state.sqlite") as state:
        run = run_stage(state, run="r1", stage="discover", items=ITEMS, wanted=WANTED,
                        chunk_size=3, window=2, submit=_submitter(pool, sent))
        stored = state.results("discover")
    assert sorted(sum(sent, [])) == sorted(WANTED)
    assert [len(c) for c in sent] == [3, 3, 1]
    assert [m.item_id for m in run.result.kept] == [it.id for it in ITEMS]
    assert run.result.stats.llm_calls == 7
    assert (run.asked, run.reused, run.failed) == (7, 0, {})
    assert set(stored) == set(WANTED)


def test_unchanged_items_are_reused_without_submitting(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    path = tmp_path / "state.sqlite"
    with StateStore.open(path) as state:
        run_stage(state, run="r1", stage="discover", items=ITEMS, wanted=WANTED, chunk_size=3,
                  window=2, submit=_submitter(pool, []))
    sent: list[list[str]] = []
    changed = {**WANTED, "m4": "fp-m4-new"}
    with StateStore.open(path) as state:
        again = run_stage(state, run="r2", stage="discover", items=ITEMS, wanted=changed,
                          chunk_size=3, window=2, submit=_submitter(pool, sent))
    assert sent == [["m4"]]
    assert (again.asked, again.reused) == (1, 6)
    assert [m.item_id for m in again.result.kept] == [it.id for it in ITEMS]


def test_a_crashed_chunk_fails_only_its_items_and_keeps_no_partial_result(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    items = [*ITEMS[:3], Item(id="bad", title="broken film"), *ITEMS[3:]]
    wanted = {**WANTED, "bad": "fp-bad"}
    with StateStore.open(tmp_path / "state.sqlite") as state:
        run = run_stage(state, run="r1", stage="discover", items=items, wanted=wanted,
                        chunk_size=3, window=1, submit=_submitter(pool, []))
        failures = {f.item_id for f in state.failures("discover")}
    # chunks: [m0 m1 m2] [bad m3 m4] [m5 m6]; the middle one crashed
    assert set(run.failed) == {"bad", "m3", "m4"} == failures
    assert all(err.startswith("task failed: RuntimeError") for err in run.failed.values())
    assert [m.item_id for m in run.result.kept] == ["m0", "m1", "m2", "m5", "m6"]


@pytest.mark.parametrize(("concurrency", "chunk", "window"), [(2, 50, 2), (32, 50, 3), (8, 1, 17)])
def test_chunk_window_keeps_two_concurrencies_of_requests_queued(
    concurrency: int, chunk: int, window: int
) -> None:
    assert chunk_window(concurrency, chunk) == window
