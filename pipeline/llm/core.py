"""What every backend shares: structured output, parsing, one repair, cache, accounting, budget.

A backend implements one raw call (`BaseLLM._raw_call`); `BaseLLM` turns it into the `LLM`
protocol. `parse_answer` is the public, pure parser every answer goes through.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kgenrich import progress
from kgenrich.errors import LLMError, LLMResponseError
from kgenrich.pipeline.llm.base import LLMAnswer, LLMRequest, Message, TokenLogprob, UsageTotals

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

BUDGET_EXHAUSTED = "budget exhausted"
"""`LLMAnswer.error` of every request refused because the run's budget is spent."""

CACHE_VERSION = 1
#: Longest answer parsed, in characters: a structured answer within `max_tokens` is far
#: shorter, and a megabytes-long reply is garbage whose parsing would only cost time.
MAX_ANSWER_CHARS = 1_000_000
#: Deepest JSON nesting parsed: our schemas need a handful of levels, and 5,000 made
#: `json.loads` raise RecursionError past the parser (and failed the whole chunk).
MAX_JSON_DEPTH = 64
#: Characters of a rejected answer kept in the cache, the answer record and the repair prompt.
MAX_KEPT_RAW_CHARS = 4_000
_STAGE_KEYS = (
    "calls",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "failures",
    "repairs",
    "budget_skipped",
    "answered",
)


# --------------------------------------------------------------------------- parsing (pure)


def _balanced_end(text: str, start: int) -> int:
    """Index just past the `}` closing the object opened at `text[start]`, or -1 if it never
    closes. Braces inside JSON strings do not count.

    Raises:
        LLMResponseError: objects and arrays nest deeper than `MAX_JSON_DEPTH`.
    """
    depth = 0
    nesting = 0  # objects and arrays, for the depth limit
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            if ch == "{":
                depth += 1
            nesting += 1
            if nesting > MAX_JSON_DEPTH:
                raise LLMResponseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
                                       raw=text[:MAX_KEPT_RAW_CHARS])
        elif ch in "}]":
            nesting = max(0, nesting - 1)
            if ch == "}":
                depth -= 1
                if depth == 0:
                    return i + 1
    return -1


def extract_json_object(raw: str) -> dict[str, Any]:
    """The first balanced JSON object in `raw`, ignoring code fences, prose before and text after.

    A `{...}` span that is not valid JSON (e.g. `{the}` in prose) is skipped. An object that
    opens but never closes is reported as truncated rather than searched for inner objects,
    so a cut-off answer never yields one of its nested parts.

    Raises:
        LLMResponseError: no object, a truncated object, or only malformed candidates.
    """
    start = raw.find("{")
    if start < 0:
        raise LLMResponseError("no JSON object in the answer", raw=raw)
    last_error: json.JSONDecodeError | None = None
    while start >= 0:
        end = _balanced_end(raw, start)
        if end < 0:
            raise LLMResponseError(
                f"truncated JSON: the object opened at character {start} never closes", raw=raw
            )
        try:
            value = json.loads(raw[start:end])
        except json.JSONDecodeError as err:
            last_error = err
        except RecursionError:  # the depth check above should make this unreachable
            raise LLMResponseError("JSON nested too deeply to parse", raw=raw) from None
        else:
            if isinstance(value, dict):
                return value
        start = raw.find("{", end)
    raise LLMResponseError(f"malformed JSON: {last_error}", raw=raw)


def is_valid_unicode(text: str) -> bool:
    """False when `text` holds lone surrogates (how undecodable bytes reach a str)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable_raw(raw: str, *, limit: int | None = None) -> str:
    """`raw` made safe to write as UTF-8 (lone surrogates become U+FFFD) and, with `limit`,
    cut to that many characters with a note of how many were dropped."""
    if not is_valid_unicode(raw):
        raw = raw.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if limit is not None and len(raw) > limit:
        raw = f"{raw[:limit]}... [{len(raw) - limit} more characters dropped]"
    return raw


def describe_validation_error(err: ValidationError, *, limit: int = 8) -> str:
    """A short, one-line account of a pydantic validation error (field path: message)."""
    parts = []
    for item in err.errors()[:limit]:
        loc = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{loc}: {item['msg']}")
    more = err.error_count() - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def parse_answer(raw: str, schema: type[T]) -> T:
    """Extract the first JSON object from a model's answer and validate it against `schema`.

    Tolerates code fences, leading prose and trailing text.

    Raises:
        LLMResponseError: no (complete, well-formed) JSON object, it does not match `schema`,
            or the answer is hostile: longer than `MAX_ANSWER_CHARS`, nested deeper than
            `MAX_JSON_DEPTH`, or not valid Unicode (lone surrogates from bad UTF-8).
    """
    if len(raw) > MAX_ANSWER_CHARS:
        raise LLMResponseError(
            f"answer too large: {len(raw)} characters, more than {MAX_ANSWER_CHARS}",
            raw=raw[:MAX_KEPT_RAW_CHARS],
        )
    if not is_valid_unicode(raw):
        raise LLMResponseError("answer is not valid UTF-8 text", raw=storable_raw(raw))
    obj = extract_json_object(raw)
    try:
        return schema.model_validate(obj)
    except ValidationError as err:
        raise LLMResponseError(
            f"answer does not match {schema.__name__}: {describe_validation_error(err)}", raw=raw
        ) from err


def request_json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent to the model for a pydantic answer type (a shared, cached dict:
    callers must not modify it)."""
    return _json_schema(schema)


@functools.lru_cache(maxsize=512)
def _json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    return schema.model_json_schema()


def repair_messages(
    messages: Sequence[Message], bad_answer: str, error: str
) -> tuple[Message, ...]:
    """The conversation for the single repair attempt: the bad answer goes back with the error."""
    feedback: Message = {
        "role": "user",
        "content": (
            f"Your answer is not valid: {error}\n"
            "Reply again with only the corrected JSON object that matches the schema: "
            "no prose, no code fences."
        ),
    }
    echoed = storable_raw(bad_answer, limit=MAX_KEPT_RAW_CHARS)
    return (*messages, {"role": "assistant", "content": echoed}, feedback)


def cache_key(
    *,
    model: str,
    messages: Sequence[Message],
    json_schema: dict[str, Any],
    temperature: float,
    seed: int | None,
    max_tokens: int,
    top_logprobs: int = 0,
) -> str:
    """sha256 over everything that determines an answer (canonical JSON, sorted keys)."""
    payload: dict[str, Any] = {
        "v": CACHE_VERSION,
        "model": model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "schema": json_schema,
        "temperature": temperature,
        "seed": seed,
        "max_tokens": max_tokens,
    }
    if top_logprobs:  # only then: the keys of every request without log-probabilities stay
        payload["top_logprobs"] = top_logprobs
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- cache


class ResponseCache:
    """One JSON file per key under `root/<first two hex chars>/<key>.json`.

    Writes go to a temp file in the same directory and are published with `os.replace`, so
    readers in any thread or process see either nothing or a whole record; two writers of the
    same key write the same answer and the last one wins. An unreadable record is a miss.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            logger.warning("ignoring unreadable LLM cache record %s", path)
            return None
        if not isinstance(record, dict) or record.get("version") != CACHE_VERSION:
            return None
        return record

    def put(self, key: str, record: dict[str, Any]) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:12]}-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"version": CACHE_VERSION, **record}, fh, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


# --------------------------------------------------------------------------- backend base


class _Progress:
    """One stage's LLM answers over every batch of the run (chunks run as parallel batches):
    a log line every 10 s at most, so a run never looks stuck, and a `kgenrich.progress` event
    per answer for a progress bar."""

    def __init__(self, stage: str, every_s: float = 10.0) -> None:
        self.stage, self.every_s = stage, every_s
        self.total = self.done = self.cached = 0
        self.start = self.last = time.monotonic()
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.total += n
        progress.report(f"{self.stage} LLM", done=self.done, total=self.total, unit="answers")

    def step(self, cached: bool) -> None:
        with self.lock:
            self.done += 1
            self.cached += int(cached)
            done, total, cached_n = self.done, self.total, self.cached
            now = time.monotonic()
            due = now - self.last >= self.every_s
            if due:
                self.last = now
        progress.report(f"{self.stage} LLM", done=done, total=total, unit="answers",
                        note=f"{cached_n} cached" if cached_n else "")
        if not due:
            return
        rate = done / max(now - self.start, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        logger.info("%s: %d/%d LLM answers so far (%d cached), %.2f/s, about %.0f s left "
                    "for the batches started", self.stage, done, total, cached_n, rate, eta)


@dataclass(frozen=True)
class RawReply:
    """What one raw call returns: the model's text and the tokens it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 1  # sent to the endpoint for this reply: retries and fallbacks included
    logprobs: tuple[TokenLogprob, ...] = ()  # per answer token, if asked for and returned


@dataclass
class BackendUsage(UsageTotals):
    """`UsageTotals` plus whether the budget ran out (requests after that got an error)."""

    budget_exhausted: bool = False


class BaseLLM(ABC):
    """The `LLM` protocol on top of one abstract raw call.

    `complete` never raises for endpoint or answer failures: it returns an `LLMAnswer` whose
    `error` says what went wrong, and the failure is counted. Cache hits cost no budget.
    Usage counts every request sent: a backend that retries or falls back within one raw call
    sets `counts_requests` and calls `_request_sent()` per request; otherwise one raw call is
    one request.
    """

    counts_requests = False

    def __init__(
        self,
        *,
        model: str,
        cache_dir: Path | None,
        concurrency: int,
        max_calls: int | None,
        max_tokens_total: int | None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self._model = model
        self._cache = ResponseCache(cache_dir) if cache_dir is not None else None
        self._concurrency = concurrency
        # Caps requests in flight across every caller of this client (parallel chunk tasks
        # included), not just within one complete_many batch.
        self._slots = threading.BoundedSemaphore(concurrency)
        self._max_calls = max_calls
        self._max_tokens_total = max_tokens_total
        self._lock = threading.Lock()
        self._usage = BackendUsage()
        self._progress: dict[str, _Progress] = {}
        self._sent = threading.local()  # requests sent by the raw call running in this thread

    # ---- the one thing a backend implements

    @abstractmethod
    def _raw_call(
        self,
        messages: Sequence[Message],
        *,
        json_schema: dict[str, Any],
        temperature: float,
        seed: int | None,
        max_tokens: int,
        top_logprobs: int,
    ) -> RawReply:
        """Send one chat request asking for JSON matching `json_schema` (and, with
        `top_logprobs` > 0, the log-probabilities of the answer tokens, where the server has them).

        Raises:
            LLMError: the endpoint failed (after the backend's own retries).
        """

    def _request_sent(self) -> None:
        """Note one request sent to the endpoint (for backends with `counts_requests`)."""
        self._sent.n = getattr(self._sent, "n", 0) + 1

    # ---- the protocol

    @property
    def model_id(self) -> str:
        return self._model

    @property
    def budget_exhausted(self) -> bool:
        with self._lock:
            return self._usage.budget_exhausted

    def usage(self) -> BackendUsage:
        """A snapshot of the running totals (safe to keep; later calls do not change it)."""
        with self._lock:
            return copy.deepcopy(self._usage)

    def complete(self, request: LLMRequest[T]) -> LLMAnswer[T]:
        json_schema = request_json_schema(request.schema)
        key = cache_key(
            model=self._model,
            messages=request.messages,
            json_schema=json_schema,
            temperature=request.temperature,
            seed=request.seed,
            max_tokens=request.max_tokens,
            top_logprobs=request.top_logprobs,
        )
        cached = self._from_cache(key, request)
        if cached is not None:
            return cached

        first = self._call_once(request, request.messages, json_schema)
        if isinstance(first, LLMAnswer):
            return first
        try:
            value = parse_answer(first.text, request.schema)
        except LLMResponseError as err:
            return self._repair(request, json_schema, key, first, err)
        return self._finish(request, key, value=value, raw=first.text, replies=(first,))

    def complete_many(self, requests: Sequence[LLMRequest[T]]) -> list[LLMAnswer[T]]:
        """Answers in request order, with up to `concurrency` requests in flight."""
        if not requests:
            return []
        workers = min(self._concurrency, len(requests))
        stage = requests[0].stage or "llm"
        with self._lock:
            progress = self._progress.setdefault(stage, _Progress(stage))
        progress.add(len(requests))
        if workers == 1:
            answers = []
            for r in requests:
                answers.append(self.complete(r))
                progress.step(answers[-1].cached)
            return answers
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm") as pool:
            futures = [pool.submit(self.complete, r) for r in requests]
            for fut in as_completed(futures):
                progress.step(fut.result().cached)
            return [f.result() for f in futures]

    # ---- internals

    def _stage(self, stage: str) -> dict[str, int]:
        # caller holds self._lock
        return self._usage.by_stage.setdefault(stage, dict.fromkeys(_STAGE_KEYS, 0))

    def _count(self, stage: str, **deltas: int) -> None:
        with self._lock:
            totals = self._stage(stage)
            for name, delta in deltas.items():
                totals[name] += delta
                if hasattr(self._usage, name):
                    setattr(self._usage, name, getattr(self._usage, name) + delta)

    def _reserve_call(self, stage: str) -> bool:
        """Count a call before making it; False (and the flag set) once the budget is spent."""
        with self._lock:
            u = self._usage
            spent_tokens = u.prompt_tokens + u.completion_tokens
            if (
                u.budget_exhausted
                or (self._max_calls is not None and u.calls >= self._max_calls)
                or (self._max_tokens_total is not None and spent_tokens >= self._max_tokens_total)
            ):
                if not u.budget_exhausted:
                    logger.warning(
                        "LLM budget exhausted after %d calls and %d tokens "
                        "(max_calls=%s, max_tokens_total=%s); remaining requests get %r",
                        u.calls,
                        spent_tokens,
                        self._max_calls,
                        self._max_tokens_total,
                        BUDGET_EXHAUSTED,
                    )
                u.budget_exhausted = True
                return False
            u.calls += 1
            self._stage(stage)["calls"] += 1
            return True

    def _call_once(
        self, request: LLMRequest[T], messages: Sequence[Message], json_schema: dict[str, Any]
    ) -> RawReply | LLMAnswer[T]:
        """One budgeted raw call: the reply, or the failed answer to return."""
        if not self._reserve_call(request.stage):
            self._count(request.stage, failures=1, budget_skipped=1)
            return LLMAnswer(value=None, error=BUDGET_EXHAUSTED, model=self._model)
        self._sent.n = 0
        try:
            with self._slots:
                reply = self._raw_call(
                    messages,
                    json_schema=json_schema,
                    temperature=request.temperature,
                    seed=request.seed,
                    max_tokens=request.max_tokens,
                    top_logprobs=request.top_logprobs,
                )
        except LLMError as err:
            sent = self._requests_sent()
            # the reservation counted one call; the endpoint saw `sent` (0 with the breaker open)
            self._count(request.stage, failures=1, calls=sent - 1)
            logger.warning(
                "LLM call failed (stage=%s item=%s): %s", request.stage, request.item_id, err
            )
            return LLMAnswer(value=None, error=str(err), model=self._model, calls=sent)
        sent = self._requests_sent()
        self._count(
            request.stage,
            calls=sent - 1,
            answered=1,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
        )
        return dataclasses.replace(reply, requests=sent)

    def _requests_sent(self) -> int:
        return int(getattr(self._sent, "n", 0)) if self.counts_requests else 1

    def _repair(
        self,
        request: LLMRequest[T],
        json_schema: dict[str, Any],
        key: str,
        first: RawReply,
        first_error: LLMResponseError,
    ) -> LLMAnswer[T]:
        logger.info(
            "repairing answer (stage=%s item=%s): %s", request.stage, request.item_id, first_error
        )
        messages = repair_messages(request.messages, first.text, str(first_error))
        second = self._call_once(request, messages, json_schema)
        if isinstance(second, LLMAnswer):
            # endpoint failure or budget: not cached, the next run tries again
            return LLMAnswer(
                value=None,
                raw=storable_raw(first.text, limit=MAX_KEPT_RAW_CHARS),
                error=second.error,
                model=self._model,
                prompt_tokens=first.prompt_tokens,
                completion_tokens=first.completion_tokens,
                calls=first.requests + second.calls,
            )
        self._count(request.stage, repairs=1)
        try:
            value = parse_answer(second.text, request.schema)
        except LLMResponseError as err:
            error = f"invalid answer after one repair: {err} (first answer: {first_error})"
            return self._finish(request, key, error=error, raw=second.text, replies=(first, second))
        return self._finish(
            request, key, value=value, raw=second.text, replies=(first, second), repaired=True
        )

    def _finish(
        self,
        request: LLMRequest[T],
        key: str,
        *,
        raw: str,
        replies: tuple[RawReply, ...],
        value: T | None = None,
        error: str | None = None,
        repaired: bool = False,
    ) -> LLMAnswer[T]:
        """Build the answer and cache it. Invalid-after-repair answers are cached too: with the
        same input the model would say the same again, and a re-run must make zero calls."""
        prompt_tokens = sum(r.prompt_tokens for r in replies)
        completion_tokens = sum(r.completion_tokens for r in replies)
        calls = sum(r.requests for r in replies)
        # the answer's own tokens: those of the last reply (the repair's, after a repair)
        logprobs = replies[-1].logprobs if error is None else ()
        if error is not None:
            # a rejected answer is kept for the record only: bounded, and writable as UTF-8
            raw = storable_raw(raw, limit=MAX_KEPT_RAW_CHARS)
            self._count(request.stage, failures=1)
            logger.warning(
                "LLM answer rejected (stage=%s item=%s): %s", request.stage, request.item_id, error
            )
        if self._cache is not None:
            record: dict[str, Any] = {
                "model": self._model,
                "stage": request.stage,
                "raw": raw,
                "error": error,
                "repaired": repaired,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
            }
            if logprobs:
                record["logprobs"] = [[t.token, t.logprob, [list(x) for x in t.top]]
                                      for t in logprobs]
            try:
                self._cache.put(key, record)
            except OSError as err:
                logger.warning(
                    "could not write LLM cache record %s: %s", self._cache.path(key), err
                )
        return LLMAnswer(
            value=value,
            raw=raw,
            error=error,
            model=self._model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            repaired=repaired,
            calls=calls,
            logprobs=logprobs,
        )

    def _from_cache(self, key: str, request: LLMRequest[T]) -> LLMAnswer[T] | None:
        if self._cache is None:
            return None
        record = self._cache.get(key)
        if record is None:
            return None
        raw = str(record.get("raw", ""))
        error = record.get("error")
        value: T | None = None
        if error is None:
            try:
                value = parse_answer(raw, request.schema)
            except LLMResponseError as err:
                logger.warning("ignoring LLM cache record %s: %s", self._cache.path(key), err)
                return None
        self._count(request.stage, cache_hits=1, failures=0 if error is None else 1)
        return LLMAnswer(
            value=value,
            raw=raw,
            error=None if error is None else str(error),
            model=self._model,
            prompt_tokens=int(record.get("prompt_tokens", 0)),
            completion_tokens=int(record.get("completion_tokens", 0)),
            cached=True,
            repaired=bool(record.get("repaired", False)),
            logprobs=_cached_logprobs(record.get("logprobs")),
        )


def _cached_logprobs(stored: Any) -> tuple[TokenLogprob, ...]:
    """The log-probabilities of a cache record ([token, logprob, [[token, logprob], ...]] rows);
    none for a record without them or one that does not have that shape."""
    if not isinstance(stored, list):
        return ()
    try:
        return tuple(TokenLogprob(token=str(tok), logprob=float(lp),
                                  top=tuple((str(a), float(b)) for a, b in top))
                     for tok, lp, top in stored)
    except (TypeError, ValueError):
        return ()
