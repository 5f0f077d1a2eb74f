"""Malformed answers from a real HTTP server on 127.0.0.1 (the scripted OpenAI server): each is a
recorded rejection (or failure) of that one answer, never an exception out of the client or a
failed chunk; and the usage counts every request the server received."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from kgenrich.kg.records import Item, Ontology
from kgenrich.pipeline.llm.base import LLMRequest
from kgenrich.pipeline.llm.core import MAX_ANSWER_CHARS, MAX_KEPT_RAW_CHARS, parse_answer
from kgenrich.runs.chunks import extract_chunk
from kgenrich.runs.outcomes import INVALID_AFTER_REPAIR
from kgenrich.testing.scripted_server import (
    ClientFactory,
    Fault,
    ScriptedServer,
    completion,
    http_error,
)


class Answer(BaseModel):
    name: str


def _ask(llm: Any, item_id: str = "m1") -> Any:
    return llm.complete(LLMRequest(messages=({"role": "user", "content": "Name?"},),
                                   schema=Answer, item_id=item_id, stage="extract"))


HOSTILE_ANSWERS = {
    "5,000 nested objects": '{"a":' * 5000 + "1" + "}" * 5000,
    "5,000 nested arrays": '{"name": ' + "[" * 5000 + "]" * 5000 + "}",
    "huge": json.dumps({"name": "x" * (MAX_ANSWER_CHARS + 10)}),
    "lone surrogate (bad UTF-8)": '{"name": "a\udc80b"}',
    "non-object JSON": "[1, 2, 3]",
    "JSON string": '"just a string"',
}


@pytest.mark.parametrize("content", HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
def test_hostile_answer_is_one_recorded_rejection(
    server: ScriptedServer, make_client: ClientFactory, tmp_path: Path, content: str
) -> None:
    server.reply = lambda body: content
    llm = make_client(cache_dir=tmp_path / "cache")  # the rejection is cached: must be writable
    answer = _ask(llm)
    assert answer.value is None and answer.error.startswith(INVALID_AFTER_REPAIR)
    assert len(answer.raw) <= MAX_KEPT_RAW_CHARS + 60 and answer.raw.encode("utf-8")
    # the first answer and its repair: both requests are counted, in the answer and the usage
    assert server.chat_count == 2 and answer.calls == 2 and llm.usage().calls == 2
    assert llm.usage().answered == 2
    again = _ask(llm)  # from the cache: no request, same rejection
    assert again.cached and again.error == answer.error and server.chat_count == 2


@pytest.mark.parametrize("body", [
    b'{"id":"x","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"{\\"name\\": \\"a\xff\xfeb\\"}"},'
    b'"finish_reason":"stop"}]}',
    b"[" * 5000 + b"]" * 5000,
    b"[1, 2]",
    b"\xff\xfe\x00garbage",
], ids=["bad UTF-8 body", "5,000 nested body", "list body", "binary body"])
def test_malformed_body_is_one_failed_answer(
    server: ScriptedServer, make_client: ClientFactory, body: bytes
) -> None:
    server.queue(*[Fault(body=body)] * 3)
    llm = make_client(max_retries=2)
    answer = _ask(llm)
    assert answer.value is None and "malformed response body" in answer.error
    assert server.chat_count == 3 and answer.calls == 3 and llm.usage().calls == 3
    assert llm.usage().answered == 0


def test_retries_are_counted_as_calls(server: ScriptedServer, make_client: ClientFactory) -> None:
    server.queue(http_error(500), http_error(503))
    llm = make_client(max_retries=2)
    answer = _ask(llm)
    assert answer.ok and server.chat_count == 3 and answer.calls == 3
    assert llm.usage().calls == 3 and llm.usage().by_stage["extract"]["calls"] == 3


def test_open_circuit_sends_nothing_and_counts_nothing(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    server.queue(*[http_error(500)] * 5)
    llm = make_client(max_retries=0, breaker_threshold=5, breaker_window=5)
    for _ in range(5):
        assert not _ask(llm).ok
    fast = _ask(llm)  # the breaker is open: no request reaches the server
    assert "circuit open" in fast.error and fast.calls == 0
    assert server.chat_count == 5 and llm.usage().calls == 5


def test_parse_answer_rejects_depth_without_recursion_error() -> None:
    from kgenrich.errors import LLMResponseError

    with pytest.raises(LLMResponseError, match="nested deeper"):
        parse_answer('{"name": "x", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}", Answer)
    assert parse_answer('{"name": "x", "ok": [[[[1]]]]}', Answer).name == "x"


def test_deep_answers_are_per_item_rejections_not_a_failed_chunk(
    server: ScriptedServer, make_client: ClientFactory, movies: Ontology
) -> None:
    """The issue's case: 30 items answered with 5,000-level JSON failed their whole chunk and
    the report counted 60 calls while the server received 964."""
    server.reply = lambda body: HOSTILE_ANSWERS["5,000 nested objects"]
    items = [Item(id=f"m{i}", title=f"Film {i}", text={"plot": f"Film {i} is a heist film."})
             for i in range(30)]
    outcome = extract_chunk(items, llm=make_client(), ontology=movies, max_per_item=5,
                            context_tokens=4096, max_chunks=4, coref="off", mentions={})
    assert outcome.failed == {} and set(outcome.done) == {it.id for it in items}
    rejected = [r for res in outcome.done.values() for r in res.rejected]
    assert len(rejected) == 30 and {r.reason for r in rejected} == {"llm answer invalid"}
    assert all("nested deeper" in r.detail for r in rejected)
    assert outcome.stats.llm_calls == server.chat_count == 60
    assert outcome.stats.completion_tokens > 0


def test_usage_counts_tokens_of_rejected_answers(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    server.queue(Fault(body=json.dumps(completion("m", "no json here", prompt_tokens=7))),
                 Fault(body=json.dumps(completion("m", "still none", prompt_tokens=7))))
    llm = make_client()
    answer = _ask(llm)
    assert not answer.ok and answer.prompt_tokens == 14
    assert llm.usage().prompt_tokens == 14 and llm.usage().calls == 2
