"""A stage's work split per item: chunks in, per-item outcomes out, and the failures that must be
asked again next run. Stored results are JSON of the stage's records."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from kgenrich.kg.records import Item, Mention, Rejection, StageResult, StageStats
from kgenrich.pipeline import complete, discover, extract
from kgenrich.pipeline.candidates import Candidate
from kgenrich.pipeline.llm.base import LLM, LLMAnswer, LLMRequest, UsageTotals

# What each stage keeps, for decoding stored results.
RECORD_TYPES: Mapping[str, type[BaseModel]] = {
    discover.STAGE: Mention,
    extract.STAGE: Candidate,
    complete.STAGE: Candidate,
}
# `core.BaseLLM._finish` error prefix: the model answered and its answer stayed invalid after
# the repair. That is the model's final word on this input (the response cache keeps it too), so
# it is a rejection, not a failure to retry.
INVALID_AFTER_REPAIR = "invalid answer after one repair"

R = TypeVar("R")


def pending(
    items: Sequence[Item], *, wanted: Mapping[str, str], stored: Mapping[str, str]
) -> list[Item]:
    """Items whose stored result for a stage is missing or was made for another fingerprint."""
    return [it for it in items if stored.get(it.id) != wanted[it.id]]


def chunked(seq: Sequence[R], size: int) -> Iterator[list[R]]:
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    for start in range(0, len(seq), size):
        yield list(seq[start:start + size])



def is_retryable(answer: LLMAnswer[Any]) -> bool:
    """A failed answer the next run should ask again: the endpoint failed, timed out, was
    circuit-broken or the budget ran out. An answer the model gave that stayed invalid after
    its repair is a rejection instead."""
    return answer.error is not None and not answer.error.startswith(INVALID_AFTER_REPAIR)


class FailureTracker:
    """An `LLM` that passes every call through and notes, per item, the retryable failures.

    One tracker wraps the shared client for one stage call on one chunk, so the flow can tell
    which items of the chunk are done and which must be asked again next run.
    """

    def __init__(self, llm: LLM) -> None:
        self._llm = llm
        self.failures: dict[str, str] = {}

    @property
    def model_id(self) -> str:
        return self._llm.model_id

    def _note(self, request: LLMRequest[Any], answer: LLMAnswer[Any]) -> None:
        if is_retryable(answer):
            self.failures.setdefault(request.item_id or "", answer.error or "")

    def complete(self, request: LLMRequest[Any]) -> LLMAnswer[Any]:
        answer = self._llm.complete(request)
        self._note(request, answer)
        return answer

    def complete_many(self, requests: Sequence[LLMRequest[Any]]) -> list[LLMAnswer[Any]]:
        answers = self._llm.complete_many(requests)
        for req, ans in zip(requests, answers, strict=True):
            self._note(req, ans)
        return answers

    def usage(self) -> UsageTotals:
        return self._llm.usage()


class ItemResult(BaseModel):
    """One item's share of one stage's result: what was kept and rejected for it."""

    model_config = ConfigDict(frozen=True)

    kept: tuple[Any, ...] = ()
    rejected: tuple[Rejection, ...] = ()


class ChunkOutcome(BaseModel):
    """What one stage call on one chunk produced, split per item; `failed` maps the items that
    must be asked again to their error. Failed items' results are partial and never stored."""

    model_config = ConfigDict(frozen=True)

    stage: str
    done: dict[str, ItemResult]
    failed: dict[str, str]
    stats: StageStats
    unattributed: tuple[Rejection, ...] = ()


def split_outcome(
    stage: str, item_ids: Sequence[str], result: StageResult[Any], failures: Mapping[str, str]
) -> ChunkOutcome:
    """Split a chunk's result per item (records carry `item_id`)."""
    kept: dict[str, list[Any]] = {i: [] for i in item_ids}
    rejected: dict[str, list[Rejection]] = {i: [] for i in item_ids}
    loose: list[Rejection] = []
    for rec in result.kept:
        kept[rec.item_id].append(rec)
    for rej in result.rejected:
        if rej.item_id in rejected:
            rejected[rej.item_id].append(rej)
        else:
            loose.append(rej)
    failed = {i: failures[i] for i in item_ids if i in failures}
    done = {i: ItemResult(kept=tuple(kept[i]), rejected=tuple(rejected[i]))
            for i in item_ids if i not in failed}
    return ChunkOutcome(stage=stage, done=done, failed=failed, stats=result.stats,
                        unattributed=tuple(loose))


def encode_result(result: ItemResult) -> tuple[str, str]:
    """(kept JSON, rejected JSON) of one item's stage result, for the state store."""
    kept = json.dumps([r.model_dump(mode="json") for r in result.kept], ensure_ascii=False)
    rejected = json.dumps([r.model_dump(mode="json") for r in result.rejected],
                          ensure_ascii=False)
    return kept, rejected


def decode_result(stage: str, kept: str, rejected: str) -> ItemResult:
    model = RECORD_TYPES[stage]
    return ItemResult(kept=tuple(model.model_validate(r) for r in json.loads(kept)),
                      rejected=tuple(Rejection.model_validate(r) for r in json.loads(rejected)))


def merge_results(
    items: Sequence[Item], per_item: Mapping[str, ItemResult], *, stats: Iterable[StageStats],
    extra_rejected: Iterable[Rejection] = (),
) -> StageResult[Any]:
    """One stage result over the whole catalog in catalog order (so entity minting and the
    final graph do not depend on which chunks ran in this run or in which order)."""
    kept: list[Any] = []
    rejected: list[Rejection] = []
    for it in items:
        res = per_item.get(it.id)
        if res is not None:
            kept += res.kept
            rejected += res.rejected
    rejected += extra_rejected
    return StageResult(kept=tuple(kept), rejected=tuple(rejected), stats=sum_stats(stats))


def sum_stats(stats: Iterable[StageStats]) -> StageStats:
    total = StageStats()
    for s in stats:
        total = StageStats(
            llm_calls=total.llm_calls + s.llm_calls, cache_hits=total.cache_hits + s.cache_hits,
            prompt_tokens=total.prompt_tokens + s.prompt_tokens,
            completion_tokens=total.completion_tokens + s.completion_tokens,
            seconds=total.seconds + s.seconds)
    return total
