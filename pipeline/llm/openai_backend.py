"""`OpenAICompatibleLLM`: the raw call over any OpenAI-compatible chat endpoint.

Works with OpenAI, vLLM, Ollama and llama.cpp servers. One retry policy (ours: exponential
backoff with jitter, honouring Retry-After), a circuit breaker, and a per-instance fallback
from `json_schema` structured output to whatever the server accepts.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import openai
from openai.types.chat import ChatCompletion
from pydantic import SecretStr

from kgenrich.errors import LLMError
from kgenrich.kg.redact import redact_url
from kgenrich.pipeline.llm.base import Message, TokenLogprob
from kgenrich.pipeline.llm.core import BaseLLM, RawReply

logger = logging.getLogger(__name__)

ResponseFormatMode = Literal["json_schema", "json_object_schema", "json_object", "prompt"]
FALLBACK_ORDER: tuple[ResponseFormatMode, ...] = (
    "json_schema",  # OpenAI / vLLM / llama.cpp's own llama-server: schema-constrained
    "json_object_schema",  # llama-cpp-python's server: {"type": "json_object", "schema": ...}
    "json_object",  # JSON mode without a schema
    "prompt",  # no response_format: the schema is only in the prompt
)
_RETRY_STATUSES = frozenset({408, 409, 429})
_REJECT_STATUSES = frozenset({400, 422})


# --------------------------------------------------------------------------- pure helpers


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent
    or unreadable. A date in the past means 0."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_delay(attempt: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: base * 2**attempt, scaled by a factor in [0.5, 1.5)."""
    return min(cap_s, base_s * (2**attempt) * (0.5 + rng.random()))


def schema_instruction(json_schema: dict[str, Any]) -> str:
    return (
        "Answer with one JSON object, and nothing else, that matches this JSON schema:\n"
        + json.dumps(json_schema, ensure_ascii=False, separators=(",", ":"))
    )


def _schema_name(json_schema: dict[str, Any]) -> str:
    # OpenAI requires ^[a-zA-Z0-9_-]{1,64}$
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", str(json_schema.get("title", "answer")))[:64]
    return name or "answer"


def build_chat_kwargs(
    *,
    model: str,
    messages: Sequence[Message],
    json_schema: dict[str, Any],
    mode: ResponseFormatMode,
    temperature: float,
    seed: int | None,
    max_tokens: int,
    top_logprobs: int = 0,
) -> dict[str, Any]:
    """The keyword arguments of `chat.completions.create` for one request in one format mode
    (with `top_logprobs` > 0, asking for the answer tokens' log-probabilities too).

    Outside `json_schema` mode the schema also goes into the system prompt, since the server
    either constrains without showing it to the model or does not constrain at all.
    """
    sent: list[dict[str, str]] = [{"role": m["role"], "content": m["content"]} for m in messages]
    if mode != "json_schema":
        instruction = schema_instruction(json_schema)
        if sent and sent[0]["role"] == "system":
            sent[0] = {"role": "system", "content": f"{sent[0]['content']}\n\n{instruction}"}
        else:
            sent.insert(0, {"role": "system", "content": instruction})
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": sent,
        "temperature": temperature,
        "max_tokens": max_tokens,
    }
    if seed is not None:
        kwargs["seed"] = seed
    if top_logprobs:
        kwargs["logprobs"] = True
        kwargs["top_logprobs"] = top_logprobs
    if mode == "json_schema":
        kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": _schema_name(json_schema), "schema": json_schema},
        }
    elif mode == "json_object_schema":
        kwargs["response_format"] = {"type": "json_object", "schema": json_schema}
    elif mode == "json_object":
        kwargs["response_format"] = {"type": "json_object"}
    return kwargs


# --------------------------------------------------------------------------- circuit breaker


class CircuitBreaker:
    """Fails fast while an endpoint looks dead, not merely flaky.

    It opens when the last `threshold` attempts all failed *and* at least `failure_rate` of
    the last `window` attempts failed. Why both: under a flaky mix (measured: 35% of attempts
    failing, each request still succeeding within its retries) five failures in a row happen
    every few hundred attempts, and a streak-only breaker then failed every caller for its
    whole cool-down; a dead endpoint fails (nearly) every attempt and trips both rules. While
    open, calls fail fast. After `cooldown_s` one trial call goes through: success closes it
    (and forgets the window), failure re-opens it at once.
    """

    def __init__(
        self,
        *,
        threshold: int,
        cooldown_s: float,
        name: str,
        window: int,
        failure_rate: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or window < threshold or not 0 < failure_rate <= 1:
            raise ValueError(
                f"need 1 <= threshold <= window and 0 < failure_rate <= 1, got "
                f"threshold={threshold}, window={window}, failure_rate={failure_rate}"
            )
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._name = name
        self._failure_rate = failure_rate
        self._clock = clock
        self._lock = threading.Lock()
        self._streak = 0
        self._recent: deque[bool] = deque(maxlen=window)  # True = failed attempt
        self._open_until: float | None = None
        self._trial_in_flight = False

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open_until is not None

    def blocked_for(self) -> float | None:
        """None if a call may go now (possibly as the half-open trial), else seconds left."""
        with self._lock:
            if self._open_until is None:
                return None
            left = self._open_until - self._clock()
            if left > 0:
                return left
            if self._trial_in_flight:
                return self._cooldown_s
            self._trial_in_flight = True
            return None

    def record_success(self) -> None:
        with self._lock:
            if self._open_until is not None:
                logger.info("endpoint %s answers again; circuit closed", self._name)
                self._recent.clear()
            self._streak = 0
            self._recent.append(False)
            self._open_until = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._streak += 1
            self._recent.append(True)
            was_open = self._open_until is not None
            self._trial_in_flight = False
            share = sum(self._recent) / len(self._recent)
            if not was_open and (self._streak < self._threshold or share < self._failure_rate):
                return
            self._open_until = self._clock() + self._cooldown_s
            if not was_open:
                logger.error(
                    "endpoint %s looks down (%d failed attempts in a row, %d of the last %d); "
                    "circuit open, failing fast for %.0fs",
                    self._name,
                    self._streak,
                    sum(self._recent),
                    len(self._recent),
                    self._cooldown_s,
                )


# --------------------------------------------------------------------------- backend


class _Rejected(Exception):
    """HTTP 400/422: the server refused the request as built (maybe its response_format)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class OpenAICompatibleLLM(BaseLLM):
    """`BaseLLM` over the `openai` client pointed at any OpenAI-compatible `base_url`.

    The constructor does no network I/O; the client is created on the first call. The API
    key is held as a `SecretStr` and scrubbed from every error message this class builds.
    Every tunable that `LLMSettings` also holds is a required argument, so its default lives
    in the settings only (`make_llm` passes the section's values).
    """

    counts_requests = True  # every retry and format fallback is a request in the usage

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | SecretStr,
        model: str,
        timeout_s: float,
        max_retries: int,
        backoff_s: float,
        concurrency: int,
        cache_dir: Path | None,
        max_calls: int | None,
        max_tokens_total: int | None,
        breaker_threshold: int,
        breaker_cooldown_s: float,
        breaker_window: int,
        breaker_failure_rate: float,
        response_format: ResponseFormatMode = "json_schema",
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 120.0,
    ) -> None:
        super().__init__(
            model=model,
            cache_dir=cache_dir,
            concurrency=concurrency,
            max_calls=max_calls,
            max_tokens_total=max_tokens_total,
        )
        self._base_url = base_url
        self._where = redact_url(base_url)
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._max_retry_after_s = max_retry_after_s
        self._mode: ResponseFormatMode = response_format
        self._mode_lock = threading.Lock()
        self._client: openai.OpenAI | None = None
        self._client_lock = threading.Lock()
        self._rng = random.Random()
        self._breaker = CircuitBreaker(
            threshold=breaker_threshold,
            cooldown_s=breaker_cooldown_s,
            name=self._where,
            window=breaker_window,
            failure_rate=breaker_failure_rate,
        )

    def __repr__(self) -> str:
        return f"OpenAICompatibleLLM(model={self.model_id!r}, base_url={self._where!r})"

    @property
    def response_format_mode(self) -> ResponseFormatMode:
        """The structured-output mode in use (it only ever steps down `FALLBACK_ORDER`)."""
        with self._mode_lock:
            return self._mode

    @property
    def circuit_open(self) -> bool:
        return self._breaker.is_open

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> OpenAICompatibleLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals

    def _scrub(self, text: str) -> str:
        secret = self._api_key.get_secret_value()
        return text.replace(secret, "***") if len(secret) >= 4 else text

    def _get_client(self) -> openai.OpenAI:
        with self._client_lock:
            if self._client is None:
                # max_retries=0: our loop below is the only retry policy
                self._client = openai.OpenAI(
                    base_url=self._base_url,
                    api_key=self._api_key.get_secret_value(),
                    timeout=self._timeout_s,
                    max_retries=0,
                )
            return self._client

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
        start_mode = mode = self.response_format_mode
        while True:
            kwargs = build_chat_kwargs(
                model=self.model_id,
                messages=messages,
                json_schema=json_schema,
                mode=mode,
                temperature=temperature,
                seed=seed,
                max_tokens=max_tokens,
                top_logprobs=top_logprobs,
            )
            try:
                reply = self._send_with_retries(kwargs)
            except _Rejected as err:
                index = FALLBACK_ORDER.index(mode)
                if index + 1 >= len(FALLBACK_ORDER):
                    # every mode refused: the request itself is bad, not its response_format
                    raise LLMError(f"{self._where} rejected the request: {err}") from None
                mode = FALLBACK_ORDER[index + 1]
                logger.info("%s refused this request (%s); retrying as %s", self._where, err, mode)
                continue
            if mode != start_mode:
                self._step_down(mode)
            return reply

    def _step_down(self, mode: ResponseFormatMode) -> None:
        with self._mode_lock:
            if FALLBACK_ORDER.index(mode) > FALLBACK_ORDER.index(self._mode):
                logger.warning(
                    "%s does not accept response_format %r; using %r from now on",
                    self._where,
                    self._mode,
                    mode,
                )
                self._mode = mode

    def _send_with_retries(self, kwargs: dict[str, Any]) -> RawReply:
        client = self._get_client()
        attempts = self._max_retries + 1
        for attempt in range(attempts):
            blocked = self._breaker.blocked_for()
            if blocked is not None:
                raise LLMError(
                    f"endpoint {self._where} looks down; circuit open "
                    f"(failing fast for another {blocked:.0f}s)"
                )
            retry_after: float | None = None
            try:
                self._request_sent()
                completion = client.chat.completions.create(**kwargs)
                if not isinstance(completion, ChatCompletion):
                    raise _MalformedBody(f"not a chat completion: {str(completion)[:200]!r}")
            except openai.APIStatusError as err:
                status = err.status_code
                detail = self._scrub(str(err.message))[:500]
                # llama-cpp-python's server answers an unknown response_format type with a
                # 500 wrapping its validation error, so a 5xx naming it counts as a rejection
                if status in _REJECT_STATUSES or (
                    status >= 500 and "response_format" in detail and "response_format" in kwargs
                ):
                    self._breaker.record_success()  # it answered: the endpoint is up
                    raise _Rejected(status, detail) from None
                if status < 500:  # it answered (4xx, incl. 429 rate limits): the endpoint is up
                    self._breaker.record_success()
                else:
                    self._breaker.record_failure()
                if status not in _RETRY_STATUSES and status < 500:
                    raise LLMError(f"{self._where} answered HTTP {status}: {detail}") from None
                retry_after = parse_retry_after(err.response.headers.get("retry-after"))
                problem = f"HTTP {status}: {detail}"
            except openai.APITimeoutError:
                self._breaker.record_failure()
                problem = f"timed out after {self._timeout_s:g}s"
            except openai.APIConnectionError as err:
                self._breaker.record_failure()
                problem = f"connection error: {self._scrub(str(err.__cause__ or err))[:300]}"
            except (ValueError, RecursionError, openai.APIResponseValidationError,
                    _MalformedBody) as err:
                # ValueError covers bodies that are not JSON or not UTF-8; RecursionError a body
                # nested thousands deep: both are the reply's fault, never the chunk's
                self._breaker.record_failure()
                problem = f"malformed response body: {self._scrub(str(err))[:300]}"
            else:
                self._breaker.record_success()
                return _reply_from(completion)

            if attempt + 1 >= attempts:
                break
            if retry_after is not None and retry_after > self._max_retry_after_s:
                raise LLMError(
                    f"{self._where} {problem}; it asks to wait {retry_after:.0f}s, "
                    f"more than max_retry_after_s={self._max_retry_after_s:g}"
                )
            delay = (
                retry_after
                if retry_after is not None
                else backoff_delay(
                    attempt, base_s=self._backoff_s, cap_s=self._max_backoff_s, rng=self._rng
                )
            )
            logger.info(
                "%s %s; retry %d/%d in %.2fs",
                self._where,
                problem,
                attempt + 1,
                self._max_retries,
                delay,
            )
            time.sleep(delay)
        raise LLMError(f"{self._where} {problem} (gave up after {attempts} attempts)")


class _MalformedBody(Exception):
    pass


def _reply_from(completion: ChatCompletion) -> RawReply:
    text = ""
    logprobs: tuple[TokenLogprob, ...] = ()
    if completion.choices:
        choice = completion.choices[0]
        text = choice.message.content or ""
        # servers without log-probabilities send none (or ignore the request): no signal then
        if choice.logprobs is not None and choice.logprobs.content:
            logprobs = tuple(
                TokenLogprob(token=t.token, logprob=float(t.logprob),
                             top=tuple((a.token, float(a.logprob)) for a in t.top_logprobs or ()))
                for t in choice.logprobs.content)
    usage = completion.usage
    return RawReply(
        text=text,
        prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
        completion_tokens=(usage.completion_tokens or 0) if usage else 0,
        logprobs=logprobs,
    )
