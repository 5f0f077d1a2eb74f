"""Pure pieces of the OpenAI-compatible backend: request building, Retry-After, backoff,
the circuit breaker (with a fake clock), URL redaction, and a constructor without I/O."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pydantic import BaseModel

from kgenrich.pipeline.llm.base import Message
from kgenrich.pipeline.llm.openai_backend import (
    FALLBACK_ORDER,
    CircuitBreaker,
    OpenAICompatibleLLM,
    backoff_delay,
    build_chat_kwargs,
    parse_retry_after,
    redact_url,
)


class Answer(BaseModel):
    name: str


SCHEMA = Answer.model_json_schema()
MESSAGES: tuple[Message, ...] = (
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name?"},
)


def kwargs_for(mode: str, seed: int | None = 3) -> dict[str, object]:
    return build_chat_kwargs(
        model="m",
        messages=MESSAGES,
        json_schema=SCHEMA,
        mode=mode,  # type: ignore[arg-type]
        temperature=0.0,
        seed=seed,
        max_tokens=64,
    )


def test_json_schema_mode() -> None:
    kw = kwargs_for("json_schema")
    assert kw["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": SCHEMA},
    }
    assert kw["messages"] == [dict(m) for m in MESSAGES]
    assert (kw["seed"], kw["max_tokens"], kw["temperature"], kw["model"]) == (3, 64, 0.0, "m")


@pytest.mark.parametrize("mode", FALLBACK_ORDER[1:])
def test_fallback_modes_put_the_schema_in_the_system_prompt(mode: str) -> None:
    kw = kwargs_for(mode)
    messages = kw["messages"]
    assert isinstance(messages, list) and len(messages) == 2
    assert messages[0]["content"].startswith("Be brief.")
    assert '"title":"Answer"' in messages[0]["content"]
    expected = {
        "json_object_schema": {"type": "json_object", "schema": SCHEMA},
        "json_object": {"type": "json_object"},
        "prompt": None,
    }[mode]
    assert kw.get("response_format") == expected


def test_schema_instruction_without_system_message() -> None:
    kw = build_chat_kwargs(
        model="m",
        messages=({"role": "user", "content": "q"},),
        json_schema=SCHEMA,
        mode="prompt",
        temperature=0.0,
        seed=None,
        max_tokens=8,
    )
    messages = kw["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "seed" not in kw


def test_build_does_not_mutate_messages() -> None:
    before = [dict(m) for m in MESSAGES]
    kwargs_for("prompt")
    assert [dict(m) for m in MESSAGES] == before


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(None) is None
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now=now) == 7
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now=now) == 0


def test_backoff_doubles_with_jitter_and_cap() -> None:
    rng = random.Random(0)
    delays = [backoff_delay(a, base_s=1.0, cap_s=100.0, rng=rng) for a in range(5)]
    for attempt, delay in enumerate(delays):
        assert 0.5 * 2**attempt <= delay < 1.5 * 2**attempt
    assert backoff_delay(20, base_s=1.0, cap_s=3.0, rng=rng) == 3.0
    assert backoff_delay(3, base_s=0.0, cap_s=3.0, rng=rng) == 0.0


def test_circuit_breaker(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, cooldown_s=10, name="http://x/v1", window=20,
                             failure_rate=0.9, clock=lambda: now[0])
    for _ in range(2):
        breaker.record_failure()
    assert breaker.blocked_for() is None
    breaker.record_success()  # resets the streak
    breaker.record_failure()
    assert breaker.blocked_for() is None
    with caplog.at_level(logging.ERROR):
        for _ in range(20):  # dead now: the window fills with failures
            breaker.record_failure()
            if breaker.is_open:
                break
    assert "endpoint http://x/v1 looks down" in caplog.text and "circuit open" in caplog.text
    assert breaker.blocked_for() == pytest.approx(10)
    now[0] = 10.5
    assert breaker.blocked_for() is None  # the half-open trial
    assert breaker.blocked_for() is not None  # only one trial at a time
    breaker.record_failure()  # trial failed: open again at once
    assert breaker.blocked_for() == pytest.approx(10)
    now[0] = 21
    assert breaker.blocked_for() is None
    breaker.record_success()
    assert not breaker.is_open and breaker.blocked_for() is None
    # the window was forgotten on closing: a dead streak re-opens it within a few attempts
    fails = next(i for i in range(1, 30) if (breaker.record_failure(), breaker.is_open)[1])
    assert fails <= 10


def test_breaker_opens_on_a_dead_endpoint_quickly() -> None:
    breaker = CircuitBreaker(threshold=5, cooldown_s=10, name="x", window=20, failure_rate=0.9)
    opened_after = next(i for i in range(1, 100) if (breaker.record_failure(), breaker.is_open)[1])
    assert opened_after == 5


def test_breaker_stays_closed_on_a_flaky_endpoint() -> None:
    """35% of attempts failing (the fault benchmark's mix) with streaks of 5 and more: a
    streak-only breaker opens here; the failure-rate window does not."""
    rng = random.Random(3)
    breaker = CircuitBreaker(threshold=5, cooldown_s=10, name="x", window=20, failure_rate=0.9)
    longest, streak = 0, 0
    for _ in range(20_000):
        if rng.random() < 0.35:
            breaker.record_failure()
            streak += 1
            longest = max(longest, streak)
        else:
            breaker.record_success()
            streak = 0
        assert not breaker.is_open
    assert longest >= 5  # the streak rule alone would have opened


def test_breaker_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="threshold"):
        CircuitBreaker(threshold=30, cooldown_s=1, name="x", window=20, failure_rate=0.9)
    with pytest.raises(ValueError, match="failure_rate"):
        CircuitBreaker(threshold=3, cooldown_s=1, name="x", window=20, failure_rate=0)


def test_redact_url() -> None:
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    assert redact_url("https://user:pw@host:8443/v1?x=1") == "https://***@host:8443/v1?x=1"


def test_constructor_does_no_io_and_repr_hides_the_key() -> None:
    # nothing listens on port 9: constructing must still work (no network in constructors)
    llm = OpenAICompatibleLLM(
        base_url="http://user:pw@127.0.0.1:9/v1",
        api_key="sk-very-secret-key",
        model="m",
        timeout_s=1,
        max_retries=0,
        backoff_s=0,
        concurrency=1,
        cache_dir=None,
        max_calls=None,
        max_tokens_total=None,
        breaker_threshold=5,
        breaker_cooldown_s=30.0,
        breaker_window=20,
        breaker_failure_rate=0.9,
    )
    assert "sk-very-secret-key" not in repr(llm) and "pw" not in repr(llm)
    assert "sk-very-secret-key" not in repr(vars(llm))
    assert llm.response_format_mode == "json_schema"
