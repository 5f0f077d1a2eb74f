"""The stage engine: submit an LLM stage's pending items in chunks through a sliding window,
commit each finished chunk to the state store, and merge fresh and stored per-item results.

It knows nothing of Prefect: ``submit`` turns a chunk into a future (a Prefect task future in
flows, a ``concurrent.futures`` future in tests and benchmarks)."""

from __future__ import annotations

import logging
import queue
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kgenrich import progress
from kgenrich.kg.records import Item, Rejection, StageResult, StageStats
from kgenrich.runs.outcomes import (
    ChunkOutcome,
    ItemResult,
    chunked,
    decode_result,
    encode_result,
    merge_results,
    pending,
)
from kgenrich.runs.plan import CompletionPlan
from kgenrich.runs.state import ChunkCommit, StateStore

logger = logging.getLogger(__name__)


class ChunkFuture(Protocol):
    """What ``submit`` returns: ``concurrent.futures.Future`` and Prefect's futures both fit."""

    def result(self) -> ChunkOutcome: ...

    def add_done_callback(self, fn: Callable[[Any], None]) -> None: ...


Submit = Callable[[list[Item]], ChunkFuture]


@dataclass
class StageRun:
    """One LLM stage over the catalog: fresh and re-used per-item results, and failures."""

    result: StageResult[Any]
    asked: int = 0  # items sent to the stage this run
    reused: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    kept_previous: set[str] = field(default_factory=set)
    deferred: tuple[str, ...] = ()


def chunk_window(concurrency: int, chunk_size: int) -> int:
    """Chunk tasks in flight per stage: enough queued requests to keep `concurrency` LLM calls
    busy while one chunk drains (two concurrencies' worth), plus one."""
    return -(-2 * concurrency // chunk_size) + 1


def run_stage(
    state: StateStore, *, run: str, stage: str, items: Sequence[Item],
    wanted: Mapping[str, str], chunk_size: int, window: int, submit: Submit,
    plan: Callable[[list[Item]], CompletionPlan] | None = None,
) -> StageRun:
    """Submit the pending items in chunks, commit each finished chunk, and assemble the stage's
    result over every item in catalog order from fresh and stored records."""
    stored = state.results(stage)
    todo = pending(items, wanted=wanted, stored={i: r.fingerprint for i, r in stored.items()})
    settled = CompletionPlan(ask=tuple(todo), nothing_to_ask=(), failed={}, deferred=())
    if plan is not None:
        settled = plan(todo)
        if settled.nothing_to_ask or settled.failed:
            state.commit_chunk(run, ChunkCommit(
                stage, done={i: (wanted[i], "[]", "[]") for i in settled.nothing_to_ask},
                failed={i: (wanted[i], err) for i, err in settled.failed.items()}))
    fresh: dict[str, ItemResult] = dict.fromkeys(settled.nothing_to_ask, ItemResult())
    failed = dict(settled.failed)
    stats: list[StageStats] = []
    loose: list[Rejection] = []
    done_items, total = 0, len(settled.ask)
    progress.report(stage, done=0, total=total, unit="items", finished=total == 0)
    for outcome in _submit_in_window(stage, list(settled.ask), chunk_size=chunk_size,
                                     window=window, submit=submit):
        done_items += len(outcome.done) + len(outcome.failed)
        progress.report(stage, done=done_items, total=total, unit="items",
                        note=f"{len(failed) + len(outcome.failed)} failed"
                        if failed or outcome.failed else "", finished=done_items >= total)
        state.commit_chunk(run, ChunkCommit(
            stage, done={i: (wanted[i], *encode_result(r)) for i, r in outcome.done.items()},
            failed={i: (wanted[i], err) for i, err in outcome.failed.items()}))
        fresh.update(outcome.done)
        failed.update(outcome.failed)
        stats.append(outcome.stats)
        loose += outcome.unattributed
    per_item: dict[str, ItemResult] = {}
    kept_previous: set[str] = set()
    pending_ids = {it.id for it in todo}
    for it in items:
        if it.id in fresh:
            per_item[it.id] = fresh[it.id]
        elif it.id in stored and (it.id not in pending_ids or it.id in failed
                                  or it.id in settled.deferred):
            # unchanged: re-use; failed or deferred: keep the older result rather than drop it
            old = stored[it.id]
            per_item[it.id] = decode_result(stage, old.kept, old.rejected)
            if it.id in pending_ids:
                kept_previous.add(it.id)
    if failed:
        logger.warning("%s: %d item(s) failed and will be retried next run", stage, len(failed))
    return StageRun(
        result=merge_results(items, per_item, stats=stats, extra_rejected=loose),
        asked=len(settled.ask), reused=len(items) - len(pending_ids), failed=failed,
        kept_previous=kept_previous, deferred=settled.deferred)


def _submit_in_window(
    stage: str, ask: list[Item], *, chunk_size: int, window: int, submit: Submit
) -> Any:
    """Yield chunk outcomes as chunks finish, with at most `window` chunks in flight."""
    # A sliding window of chunk tasks, not all at once: every chunk task runs its own pool of
    # LLM threads, and with thousands of items hundreds of tasks (thousands of threads) would
    # queue on the client's shared concurrency cap; measured at concurrency 32, that starved
    # the LLM between chunks (75 of 128 items/s). `window` chunks keep the cap busy.
    waiting = deque(chunked(ask, chunk_size))
    finished: queue.SimpleQueue[tuple[ChunkFuture, list[Item]]] = queue.SimpleQueue()
    in_flight = 0
    while waiting or in_flight:
        while waiting and in_flight < window:
            chunk = waiting.popleft()
            _submit_one(submit, chunk, finished)
            in_flight += 1
        fut, chunk = finished.get()
        in_flight -= 1
        yield _outcome(fut, stage, chunk)


def _submit_one(
    submit: Submit, chunk: list[Item], finished: queue.SimpleQueue[tuple[ChunkFuture, list[Item]]]
) -> None:
    fut = submit(chunk)

    def done(_: object) -> None:  # may run at once (already done) or on another thread
        finished.put((fut, chunk))

    fut.add_done_callback(done)


def _outcome(fut: ChunkFuture, stage: str, chunk: Sequence[Item]) -> ChunkOutcome:
    try:
        return fut.result()
    except Exception as err:  # noqa: BLE001 - a crashed chunk becomes recorded item failures
        logger.error("%s task failed for %d item(s): %r", stage, len(chunk), err)
        return ChunkOutcome(stage=stage, done={}, stats=StageStats(),
                            failed={it.id: f"task failed: {err!r}" for it in chunk})
