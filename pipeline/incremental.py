"""Incremental runs, as pure helpers: per-item fingerprints, the diff between the catalog the
state store knows and the current one, chunking, and splitting a stage's result per item.

A stage's fingerprint for an item covers everything that determines that item's answers: the
item's canonical JSON, the stage's prompt version, the LLM model id, the stage's settings, the
ontology, and for completion the item's seed facts and its upstream stages' fingerprints. Not
covered, deliberately: the catalog-wide vocabulary shown as choices/hints in completion prompts;
including it would make every new genre or person re-ask every item.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from kgenrich.kg.records import Item, Mention, Ontology, Rejection, StageResult, StageStats, Triple
from kgenrich.pipeline import complete, discover, extract
from kgenrich.pipeline.candidates import Candidate
from kgenrich.pipeline.llm.base import LLM, LLMAnswer, LLMRequest, UsageTotals

STAGES: tuple[str, ...] = (discover.STAGE, extract.STAGE, complete.STAGE)
PROMPT_VERSIONS: Mapping[str, str] = {
    discover.STAGE: discover.PROMPT_VERSION,
    extract.STAGE: extract.PROMPT_VERSION,
    complete.STAGE: complete.PROMPT_VERSION,
}
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
UPSTREAM_FAILED = "upstream stage failed"

R = TypeVar("R")


# --------------------------------------------------------------------------- fingerprints


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 as is: the same data always gives the same text."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def sha256(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def ontology_digest(ontology: Ontology) -> str:
    return sha256(ontology)


def stage_fingerprints(
    item: Item,
    *,
    model: str,
    ontology: str,
    settings: Mapping[str, Mapping[str, Any]],
    seed_facts: Iterable[tuple[str, str, str]] = (),
    prompt_versions: Mapping[str, str] = PROMPT_VERSIONS,
) -> dict[str, str]:
    """Stage -> fingerprint of this item's input to it. `settings` holds each stage's relevant
    settings as plain data; `ontology` is `ontology_digest(...)`. Completion chains the
    discovery and extraction fingerprints: its gaps and prompt facts come from their output."""
    base = {"item": item, "model": model, "ontology": ontology}
    out: dict[str, str] = {}
    for stage in (discover.STAGE, extract.STAGE):
        out[stage] = sha256({**base, "stage": stage, "prompt": prompt_versions[stage],
                             "settings": settings.get(stage, {})})
    out[complete.STAGE] = sha256({
        **base, "stage": complete.STAGE, "prompt": prompt_versions[complete.STAGE],
        "settings": settings.get(complete.STAGE, {}), "seed": sorted(set(seed_facts)),
        "upstream": [out[discover.STAGE], out[extract.STAGE]],
    })
    return out


def item_fingerprint(stage_fps: Mapping[str, str]) -> str:
    """The item's content fingerprint: it changes iff one of its stage fingerprints does."""
    return sha256(dict(stage_fps))


def item_seed_facts(
    triples: Iterable[Triple], *, item_entity: Mapping[str, str]
) -> dict[str, list[tuple[str, str, str]]]:
    """Item id -> keys of the given (seed) triples about the item's entity."""
    by_entity: dict[str, list[tuple[str, str, str]]] = {}
    for t in triples:
        by_entity.setdefault(t.head, []).append(t.key)
    return {item: by_entity.get(ent, []) for item, ent in item_entity.items()}


# --------------------------------------------------------------------------- catalog diff


@dataclass(frozen=True)
class CatalogDiff:
    """How the current catalog differs from the one the state store last saw."""

    new: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        return {"new": len(self.new), "changed": len(self.changed),
                "unchanged": len(self.unchanged), "removed": len(self.removed)}


def diff_catalog(previous: Mapping[str, str], current: Mapping[str, str]) -> CatalogDiff:
    """Compare item id -> fingerprint maps. Order follows `current`, then `previous`."""
    return CatalogDiff(
        new=tuple(i for i in current if i not in previous),
        changed=tuple(i for i, fp in current.items() if i in previous and previous[i] != fp),
        unchanged=tuple(i for i, fp in current.items() if previous.get(i) == fp),
        removed=tuple(i for i in previous if i not in current),
    )


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


# --------------------------------------------------------------------------- failures


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


# --------------------------------------------------------------------------- reporting


class FailureRow(BaseModel):
    """One line of `failures.jsonl`: an item a stage could not finish, to be retried."""

    item_id: str
    stage: str
    error: str
    attempts: int = 1
    run: str = ""
    kept_previous: bool = False  # an older result of the item is in this run's graph


class RetractionRow(BaseModel):
    """One line of `retractions.jsonl`: an item that left the catalog and what left with it."""

    run: str
    at: str
    item_id: str
    reason: str
    triples: list[dict[str, Any]] = Field(default_factory=list)
    records: dict[str, Any] = Field(default_factory=dict)  # stage -> the item's stored records


def removed_triples(
    triples: Iterable[Triple], *, item_ids: Iterable[str], item_entity: Callable[[str], str],
) -> dict[str, list[Triple]]:
    """Per removed item, the non-seed triples derived for it (by provenance or as head)."""
    from kgenrich.kg.records import SourceKind

    wanted = {i: item_entity(i) for i in item_ids}
    heads = {ent: i for i, ent in wanted.items()}
    out: dict[str, list[Triple]] = {i: [] for i in wanted}
    for t in triples:
        if t.provenance.source is SourceKind.SEED:
            continue
        owner = t.provenance.item_id if t.provenance.item_id in wanted else heads.get(t.head)
        if owner is not None:
            out[owner].append(t)
    return out


def render_markdown_section(
    failures: Sequence[FailureRow], retractions: Sequence[RetractionRow], *, limit: int = 50
) -> str:
    """Report sections for the failed items (to retry) and this run's retractions."""
    out = ["", "## Failed items (retried next run)", ""]
    if not failures:
        out.append("None.")
    else:
        out += ["| item | stage | attempts | previous result kept | error |",
                "|---|---|---:|---|---|"]
        for f in failures[:limit]:
            err = f.error.replace("|", "\\|").replace("\n", " ")[:160]
            out.append(f"| {f.item_id} | {f.stage} | {f.attempts} | "
                       f"{'yes' if f.kept_previous else 'no'} | {err} |")
        if len(failures) > limit:
            out.append(f"\n... and {len(failures) - limit} more in `failures.jsonl`.")
    out += ["", "## Retracted items (left the catalog)", ""]
    if not retractions:
        out.append("None.")
    else:
        out += ["| item | triples retracted | reason |", "|---|---:|---|"]
        out += [f"| {r.item_id} | {len(r.triples)} | {r.reason} |" for r in retractions[:limit]]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- completion


@dataclass(frozen=True)
class CompletionPlan:
    """Which pending items completion asks this run, which are done without asking (no gaps),
    which fail because an upstream stage failed for them, and which wait for a later run."""

    ask: tuple[Item, ...]
    nothing_to_ask: tuple[str, ...]
    failed: Mapping[str, str]
    deferred: tuple[str, ...]


def plan_completion(
    todo: Sequence[Item], *, gaps: Mapping[str, Sequence[Any]],
    upstream_failed: Mapping[str, str], max_items: int | None,
) -> CompletionPlan:
    """Split completion's pending items. An item whose discovery or extraction failed is not
    asked: its gaps and prompt facts would change once they succeed."""
    failed = {it.id: f"{UPSTREAM_FAILED}: {upstream_failed[it.id]}" for it in todo
              if it.id in upstream_failed}
    ready = [it for it in todo if it.id not in failed]
    with_gaps = [it for it in ready if gaps.get(it.id)]
    limit = len(with_gaps) if max_items is None else max_items
    return CompletionPlan(
        ask=tuple(with_gaps[:limit]),
        nothing_to_ask=tuple(it.id for it in ready if not gaps.get(it.id)),
        failed=failed,
        deferred=tuple(it.id for it in with_gaps[limit:]),
    )
