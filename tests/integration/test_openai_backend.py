"""OpenAICompatibleLLM against the scripted server: retries, Retry-After, timeouts, malformed
bodies, the circuit breaker, response_format fallback, caching, concurrency, and the key."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from kgenrich.pipeline.llm.base import LLMRequest
from kgenrich.testing import (
    TEST_KEY,
    ClientFactory,
    Fault,
    ScriptedServer,
    html_page,
    http_error,
    malformed_json,
    rate_limited,
    slow,
)


class Named(BaseModel):
    name: str


def ask(text: str = "Name something.", **kwargs: Any) -> LLMRequest[Named]:
    return LLMRequest(messages=({"role": "user", "content": text},), schema=Named, **kwargs)


def user_text(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


# ------------------------------------------------------------------ requests and answers


def test_structured_request_and_answer(server: ScriptedServer, make_client: ClientFactory) -> None:
    llm = make_client()
    answer = llm.complete(ask(seed=5, max_tokens=33, temperature=0.2, stage="discover"))
    assert answer.value == Named(name="scripted")
    assert answer.prompt_tokens == 11 and answer.completion_tokens == 2
    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {TEST_KEY}"
    body = request.body
    assert body["model"] == "scripted-model"
    assert (body["seed"], body["max_tokens"], body["temperature"]) == (5, 33, 0.2)
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == Named.model_json_schema()
    usage = llm.usage()
    assert usage.by_stage["discover"]["prompt_tokens"] == 11 and usage.calls == 1


def test_repair_goes_over_http(server: ScriptedServer, make_client: ClientFactory) -> None:
    replies = iter(['{"nom": "x"}', '{"name": "fixed"}'])
    server.reply = lambda body: next(replies)
    answer = make_client().complete(ask())
    assert answer.value == Named(name="fixed") and answer.repaired
    assert server.requests[1].body["messages"][-2] == {
        "role": "assistant",
        "content": '{"nom": "x"}',
    }


# ------------------------------------------------------------------ retries


def test_5xx_retried_then_success(server: ScriptedServer, make_client: ClientFactory) -> None:
    server.queue(http_error(500), http_error(503))
    answer = make_client(max_retries=2).complete(ask())
    assert answer.ok and server.chat_count == 3


def test_gives_up_after_max_retries(server: ScriptedServer, make_client: ClientFactory) -> None:
    server.queue(*[http_error(502, "bad gateway")] * 3)
    llm = make_client(max_retries=2)
    answer = llm.complete(ask())
    assert answer.value is None and answer.error is not None
    assert "HTTP 502" in answer.error and "gave up after 3 attempts" in answer.error
    assert server.chat_count == 3 and llm.usage().failures == 1


def test_4xx_is_not_retried(server: ScriptedServer, make_client: ClientFactory) -> None:
    server.queue(http_error(404, "no such model"))
    answer = make_client().complete(ask())
    assert answer.error is not None and "HTTP 404" in answer.error and server.chat_count == 1


def test_retry_after_seconds_is_honoured(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    server.queue(rate_limited("1"))
    started = time.monotonic()
    answer = make_client(backoff_s=0.0).complete(ask())
    elapsed = time.monotonic() - started
    assert answer.ok and server.chat_count == 2
    assert 0.9 <= elapsed < 5, elapsed


def test_retry_after_http_date_is_honoured(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=2)
    server.queue(rate_limited(format_datetime(when, usegmt=True)))
    started = time.monotonic()
    answer = make_client(backoff_s=0.0).complete(ask())
    elapsed = time.monotonic() - started
    # the date has 1 s resolution: the wait is between 1 and 2 s
    assert answer.ok and 0.9 <= elapsed < 5, elapsed


def test_retry_after_on_503_is_honoured(server: ScriptedServer, make_client: ClientFactory) -> None:
    server.queue(http_error(503, "warming up", **{"Retry-After": "0.5"}))
    started = time.monotonic()
    answer = make_client(backoff_s=0.0).complete(ask())
    assert answer.ok and 0.45 <= time.monotonic() - started < 5


def test_retry_after_too_long_fails_fast(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    server.queue(rate_limited("3600"))
    started = time.monotonic()
    answer = make_client(max_retry_after_s=5).complete(ask())
    assert answer.error is not None and "asks to wait 3600s" in answer.error
    assert time.monotonic() - started < 2 and server.chat_count == 1


def test_timeout_is_a_recorded_error(server: ScriptedServer, make_client: ClientFactory) -> None:
    server.queue(slow(1.5), slow(1.5))
    llm = make_client(timeout_s=0.3, max_retries=1)
    started = time.monotonic()
    answer = llm.complete(ask())
    assert answer.value is None and answer.error is not None
    assert "timed out after 0.3s" in answer.error
    assert time.monotonic() - started < 3
    assert llm.usage().failures == 1


def test_timeout_then_success(server: ScriptedServer, make_client: ClientFactory) -> None:
    server.queue(slow(1.0))
    answer = make_client(timeout_s=0.3).complete(ask())
    assert answer.ok


@pytest.mark.parametrize("fault", [malformed_json(), html_page()], ids=["json", "html"])
def test_malformed_body_is_retried(
    server: ScriptedServer, make_client: ClientFactory, fault: Fault
) -> None:
    server.queue(fault)
    answer = make_client().complete(ask())
    assert answer.ok and server.chat_count == 2


def test_malformed_body_every_time_is_an_error(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    server.queue(*[malformed_json()] * 3)
    answer = make_client(max_retries=2).complete(ask())
    assert answer.error is not None and "malformed response body" in answer.error


def test_connection_refused_is_an_error(make_client: ClientFactory) -> None:
    answer = make_client(base_url="http://127.0.0.1:9/v1", max_retries=1).complete(ask())
    assert answer.error is not None and "connection error" in answer.error


# ------------------------------------------------------------------ circuit breaker


def test_circuit_breaker_opens_fails_fast_and_recovers(
    server: ScriptedServer, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server.queue(*[http_error(500)] * 3)
    llm = make_client(max_retries=0, breaker_threshold=3, breaker_cooldown_s=0.5)
    with caplog.at_level(logging.ERROR, logger="kgenrich.pipeline.llm.openai_backend"):
        errors = [llm.complete(ask(f"q{i}")).error for i in range(3)]
    assert all(e is not None and "HTTP 500" in e for e in errors)
    assert llm.circuit_open
    assert f"endpoint {server.base_url} looks down" in caplog.text
    assert "circuit open" in caplog.text

    started = time.monotonic()
    answer = llm.complete(ask("while open"))
    assert answer.error is not None and "looks down; circuit open" in answer.error
    assert server.chat_count == 3  # nothing was sent
    assert time.monotonic() - started < 0.2

    time.sleep(0.6)
    assert llm.complete(ask("after cool-down")).ok  # the trial call closes it
    assert not llm.circuit_open


def test_breaker_stops_a_retry_loop(server: ScriptedServer, make_client: ClientFactory) -> None:
    server.queue(*[http_error(500)] * 10)
    llm = make_client(max_retries=8, breaker_threshold=3, breaker_cooldown_s=30)
    answer = llm.complete(ask())
    assert answer.error is not None and "circuit open" in answer.error
    assert server.chat_count == 3


def test_trial_answered_with_4xx_closes_the_breaker(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    server.queue(http_error(500), http_error(500))
    llm = make_client(max_retries=0, breaker_threshold=2, breaker_cooldown_s=0.3)
    llm.complete(ask("a"))
    llm.complete(ask("b"))
    assert llm.circuit_open
    time.sleep(0.35)
    server.queue(http_error(404))
    assert "HTTP 404" in (llm.complete(ask("c")).error or "")
    assert llm.complete(ask("d")).ok  # not stuck waiting for a trial that ended


def test_rate_limits_do_not_trip_the_breaker(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    server.queue(*[rate_limited("0")] * 4)
    llm = make_client(max_retries=4, breaker_threshold=2)
    assert llm.complete(ask()).ok and not llm.circuit_open


# ------------------------------------------------------------------ response_format fallback


def test_json_schema_rejected_falls_back_and_remembers(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    server.reject_formats = {
        "json_schema": (400, "response_format json_schema is not supported"),
        "json_object": (400, "response_format json_object is not supported"),
    }
    llm = make_client()
    assert llm.complete(ask("first")).ok
    # json_schema -> json_object+schema -> json_object -> plain prompt
    types = [r.body.get("response_format", {}).get("type") for r in server.requests]
    assert types == ["json_schema", "json_object", "json_object", None]
    assert llm.response_format_mode == "prompt"
    prompt_request = server.requests[-1].body
    assert prompt_request["messages"][0]["role"] == "system"
    assert '"title":"Named"' in prompt_request["messages"][0]["content"]

    assert llm.complete(ask("second")).ok
    assert server.chat_count == 5  # remembered: one request, straight in prompt mode
    assert "response_format" not in server.requests[-1].body


def test_llama_cpp_python_style_500_rejection(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    # llama-cpp-python 0.3.x wraps its validation error in a 500
    message = "1 validation error: ('body', 'response_format', 'type') Input should be 'text'"
    server.reject_formats = {"json_schema": (500, message)}
    llm = make_client()
    assert llm.complete(ask()).ok
    assert server.chat_count == 2 and llm.response_format_mode == "json_object_schema"
    assert server.requests[-1].body["response_format"]["schema"] == Named.model_json_schema()
    assert not llm.circuit_open


def test_a_bad_request_is_not_mistaken_for_a_format_problem(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    server.queue(*[http_error(400, "context length exceeded")] * 4)
    llm = make_client()
    answer = llm.complete(ask())
    assert answer.error is not None and "rejected the request" in answer.error
    assert "context length exceeded" in answer.error
    assert llm.response_format_mode == "json_schema"  # nothing remembered


# ------------------------------------------------------------------ cache and concurrency


def test_rerun_with_cache_sends_nothing(
    server: ScriptedServer, make_client: ClientFactory, tmp_path: Path
) -> None:
    server.reply = lambda body: json.dumps({"name": user_text(body).upper()})
    requests = [ask(f"q{i}") for i in range(4)]
    first = make_client(cache_dir=tmp_path).complete_many(requests)
    assert server.chat_count == 4
    second = make_client(cache_dir=tmp_path).complete_many(requests)
    assert server.chat_count == 4
    assert [a.value for a in second] == [a.value for a in first]
    assert all(a.cached for a in second)


def test_concurrent_answers_keep_order(server: ScriptedServer, make_client: ClientFactory) -> None:
    def reply(body: dict[str, Any]) -> str:
        n = int(user_text(body).removeprefix("q"))
        time.sleep(0.02 * (9 - n))  # later ones return first
        return json.dumps({"name": f"a{n}"})

    server.reply = reply
    answers = make_client(concurrency=3).complete_many([ask(f"q{i}") for i in range(9)])
    assert [a.value.name for a in answers if a.value] == [f"a{i}" for i in range(9)]
    assert server.peak_in_flight == 3


# ------------------------------------------------------------------ the API key


def test_api_key_never_leaks(
    server: ScriptedServer,
    make_client: ClientFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, openai's and httpx's included
    llm = make_client(cache_dir=tmp_path / "cache", max_retries=1)
    server.queue(http_error(500, f"upstream failed for key {TEST_KEY}"))
    answers = [llm.complete(ask("retried"))]
    server.queue(http_error(401, f"Incorrect API key provided: {TEST_KEY}"))
    answers.append(llm.complete(ask("unauthorised")))
    server.queue(*[http_error(503, f"down ({TEST_KEY})")] * 2)
    answers.append(llm.complete(ask("down")))
    server.reply = lambda body: '{"name": "bad"'  # truncated -> repair -> failure
    answers.append(llm.complete(ask("bad answer")))

    assert answers[0].ok and not answers[1].ok and not answers[2].ok
    assert all(r.headers["authorization"] == f"Bearer {TEST_KEY}" for r in server.requests)

    seen = [caplog.text, repr(llm), str(vars(llm))]
    seen += [repr(a) for a in answers]
    seen += [p.read_text(encoding="utf-8") for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert any("cache" in str(p) for p in (tmp_path / "cache").rglob("*.json"))
    for text in seen:
        assert TEST_KEY not in text
    assert "***" in (answers[1].error or "")
