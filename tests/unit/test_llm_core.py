"""BaseLLM through FakeLLM: repair, cache, accounting, concurrency, budget, failures."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from kgenrich.errors import LLMError
from kgenrich.pipeline.llm.base import LLMRequest, Message
from kgenrich.pipeline.llm.core import BUDGET_EXHAUSTED, ResponseCache, cache_key, repair_messages
from kgenrich.pipeline.llm.factory import make_llm
from kgenrich.pipeline.llm.fake import FakeLLM, minimal_instance, schema_default_responder
from kgenrich.settings import LLMSettings


class Capital(BaseModel):
    country: str
    capital: str


def ask(country: str, *, stage: str = "test", seed: int | None = None) -> LLMRequest[Capital]:
    messages: tuple[Message, ...] = (
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": f"Capital of {country}?"},
    )
    return LLMRequest(messages=messages, schema=Capital, stage=stage, seed=seed, item_id=country)


def good(country: str, capital: str = "C") -> str:
    return json.dumps({"country": country, "capital": capital})


def echo_responder(messages: Sequence[Message], schema: dict[str, Any]) -> str:
    country = messages[-1]["content"].removeprefix("Capital of ").rstrip("?")
    return good(country, capital=f"capital-of-{country}")


# ------------------------------------------------------------------ happy path and repair


def test_good_answer() -> None:
    llm = FakeLLM([good("France", "Paris")])
    answer = llm.complete(ask("France"))
    assert answer.ok and answer.value == Capital(country="France", capital="Paris")
    assert not answer.repaired and not answer.cached and answer.error is None
    assert answer.model == "fake" and answer.completion_tokens > 0


def test_repair_then_value() -> None:
    llm = FakeLLM(['{"country": "France"}', f"```json\n{good('France', 'Paris')}\n```"])
    answer = llm.complete(ask("France"))
    assert answer.value == Capital(country="France", capital="Paris")
    assert answer.repaired
    # the repair conversation carries the bad answer and the validation error
    repair_call = llm.raw_calls[1]
    assert repair_call[-2] == {"role": "assistant", "content": '{"country": "France"}'}
    assert repair_call[-1]["role"] == "user"
    assert "capital: Field required" in repair_call[-1]["content"]
    usage = llm.usage()
    assert usage.calls == 2 and usage.by_stage["test"]["repairs"] == 1
    assert usage.failures == 0


def test_both_bad_is_a_recorded_failure_not_a_drop() -> None:
    llm = FakeLLM(["no idea", '{"country": 3}'])
    answer = llm.complete(ask("France"))
    assert answer.value is None and not answer.ok
    assert answer.error is not None and "after one repair" in answer.error
    assert answer.raw == '{"country": 3}'
    assert len(llm.raw_calls) == 2  # exactly one repair attempt
    assert llm.usage().failures == 1
    assert llm.usage().by_stage["test"]["failures"] == 1


def test_endpoint_failure_is_an_answer_with_error() -> None:
    llm = FakeLLM([LLMError("endpoint down")])
    answer = llm.complete(ask("France"))
    assert answer.error == "endpoint down" and answer.value is None
    assert llm.usage().failures == 1 and llm.usage().calls == 1


def test_repair_call_failing_keeps_the_first_raw(tmp_path: Path) -> None:
    llm = FakeLLM(["bad", LLMError("timeout")], cache_dir=tmp_path)
    answer = llm.complete(ask("France"))
    assert answer.error == "timeout" and answer.raw == "bad"
    # endpoint failures are not cached: the next run asks again
    again = FakeLLM([good("France")], cache_dir=tmp_path)
    assert again.complete(ask("France")).ok and len(again.raw_calls) == 1


def test_repair_messages_is_pure() -> None:
    msgs: tuple[Message, ...] = ({"role": "user", "content": "q"},)
    out = repair_messages(msgs, "bad", "why")
    assert msgs == ({"role": "user", "content": "q"},)
    assert [m["role"] for m in out] == ["user", "assistant", "user"]


# ------------------------------------------------------------------ cache


def test_second_identical_run_makes_zero_raw_calls(tmp_path: Path) -> None:
    requests = [ask(c) for c in ("France", "Spain", "Peru")]
    first = FakeLLM(echo_responder, cache_dir=tmp_path)
    answers1 = first.complete_many(requests)
    assert len(first.raw_calls) == 3

    second = FakeLLM(echo_responder, cache_dir=tmp_path)
    answers2 = second.complete_many(requests)
    assert second.raw_calls == []
    assert [a.value for a in answers2] == [a.value for a in answers1]
    assert all(a.cached for a in answers2)
    usage = second.usage()
    assert usage.calls == 0 and usage.cache_hits == 3
    assert usage.by_stage["test"]["cache_hits"] == 3
    assert usage.prompt_tokens == 0  # cache hits cost nothing


def test_cache_key_covers_every_input() -> None:
    base: dict[str, Any] = dict(
        model="m",
        messages=({"role": "user", "content": "q"},),
        json_schema=Capital.model_json_schema(),
        temperature=0.0,
        seed=None,
        max_tokens=256,
    )
    key = cache_key(**base)
    assert key == cache_key(**base)
    for field, other in [
        ("model", "m2"),
        ("messages", ({"role": "user", "content": "q2"},)),
        ("json_schema", {"type": "object"}),
        ("temperature", 0.7),
        ("seed", 1),
        ("max_tokens", 128),
    ]:
        assert cache_key(**{**base, field: other}) != key, field


def test_changed_seed_is_a_new_question(tmp_path: Path) -> None:
    FakeLLM(echo_responder, cache_dir=tmp_path).complete(ask("France", seed=1))
    llm = FakeLLM(echo_responder, cache_dir=tmp_path)
    llm.complete(ask("France", seed=2))
    assert len(llm.raw_calls) == 1


def test_failed_after_repair_is_cached_too(tmp_path: Path) -> None:
    FakeLLM(["bad", "still bad"], cache_dir=tmp_path).complete(ask("France"))
    llm = FakeLLM([], cache_dir=tmp_path)
    answer = llm.complete(ask("France"))
    assert answer.cached and answer.error is not None and llm.raw_calls == []
    assert llm.usage().failures == 1


def test_repaired_answer_is_cached_as_repaired(tmp_path: Path) -> None:
    FakeLLM(["bad", good("France")], cache_dir=tmp_path).complete(ask("France"))
    answer = FakeLLM([], cache_dir=tmp_path).complete(ask("France"))
    assert answer.ok and answer.cached and answer.repaired


def test_corrupt_cache_record_is_a_miss(tmp_path: Path) -> None:
    llm = FakeLLM([good("France")], cache_dir=tmp_path)
    llm.complete(ask("France"))
    (record,) = tmp_path.glob("*/*.json")
    record.write_text("{not json", encoding="utf-8")
    again = FakeLLM([good("France")], cache_dir=tmp_path)
    assert again.complete(ask("France")).ok and len(again.raw_calls) == 1


def test_cache_layout_and_no_temp_leftovers(tmp_path: Path) -> None:
    FakeLLM(echo_responder, cache_dir=tmp_path, concurrency=4).complete_many(
        [ask(f"c{i}") for i in range(20)]
    )
    files = list(tmp_path.rglob("*"))
    records = [f for f in files if f.is_file()]
    assert len(records) == 20
    assert all(f.suffix == ".json" and f.parent.name == f.stem[:2] for f in records)


def test_cache_concurrent_writers_of_one_key(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for _ in range(50):
                cache.put("ab" * 32, {"raw": "x" * n})
                record = cache.get("ab" * 32)
                assert record is not None and set(record["raw"]) == {"x"}
        except BaseException as err:  # collected and re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=write, args=(n,)) for n in (10, 1000, 100_000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["ab" * 32 + ".json"]


def _fill_cache(cache_dir: str) -> int:
    llm = FakeLLM(echo_responder, cache_dir=Path(cache_dir), concurrency=3)
    llm.complete_many([ask(f"c{i}") for i in range(30)])
    return len(llm.raw_calls)


def test_cache_shared_by_processes(tmp_path: Path) -> None:
    with ProcessPoolExecutor(max_workers=2) as pool:
        calls = list(pool.map(_fill_cache, [str(tmp_path)] * 2))
    assert all(0 <= c <= 30 for c in calls)
    assert len(list(tmp_path.glob("*/*.json"))) == 30
    assert list(tmp_path.rglob("*.tmp")) == []
    assert _fill_cache(str(tmp_path)) == 0


# ------------------------------------------------------------------ concurrency


def test_complete_many_keeps_request_order_under_concurrency() -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def slow_echo(messages: Sequence[Message], schema: dict[str, Any]) -> str:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        # later requests finish first, so order must come from the pool, not from timing
        n = int(messages[-1]["content"].removeprefix("Capital of c").rstrip("?"))
        time.sleep(0.002 * (20 - n))
        with lock:
            in_flight -= 1
        return echo_responder(messages, schema)

    llm = FakeLLM(slow_echo, concurrency=4)
    answers = llm.complete_many([ask(f"c{i}") for i in range(20)])
    assert [a.value.country for a in answers if a.value] == [f"c{i}" for i in range(20)]
    assert 1 < peak <= 4


def test_complete_many_empty() -> None:
    assert FakeLLM([]).complete_many([]) == []


# ------------------------------------------------------------------ budget


def test_max_calls_stops_cleanly() -> None:
    llm = FakeLLM(echo_responder, max_calls=2)
    answers = llm.complete_many([ask(f"c{i}") for i in range(5)])
    assert [a.ok for a in answers] == [True, True, False, False, False]
    assert all(a.error == BUDGET_EXHAUSTED for a in answers[2:])
    usage = llm.usage()
    assert usage.budget_exhausted and llm.budget_exhausted
    assert usage.calls == 2 and usage.by_stage["test"]["budget_skipped"] == 3
    assert len(llm.raw_calls) == 2


def test_token_budget() -> None:
    llm = FakeLLM(echo_responder, max_tokens_total=10)  # one call costs more than that
    answers = llm.complete_many([ask("a"), ask("b")])
    assert answers[0].ok and answers[1].error == BUDGET_EXHAUSTED
    assert llm.usage().budget_exhausted


def test_budget_with_concurrency_never_overspends_calls() -> None:
    llm = FakeLLM(echo_responder, max_calls=7, concurrency=4)
    answers = llm.complete_many([ask(f"c{i}") for i in range(30)])
    assert sum(a.ok for a in answers) == 7 and len(llm.raw_calls) == 7


def test_cache_hits_are_served_after_the_budget_is_spent(tmp_path: Path) -> None:
    FakeLLM(echo_responder, cache_dir=tmp_path).complete(ask("a"))
    llm = FakeLLM(echo_responder, cache_dir=tmp_path, max_calls=1)
    answers = llm.complete_many([ask("b"), ask("c"), ask("a")])
    assert [a.ok for a in answers] == [True, False, True]
    assert answers[2].cached


# ------------------------------------------------------------------ accounting


def test_usage_by_stage_and_snapshot() -> None:
    llm = FakeLLM(echo_responder)
    llm.complete(ask("a", stage="discover"))
    snapshot = llm.usage()
    llm.complete(ask("b", stage="extract"))
    llm.complete(ask("c", stage="extract"))
    usage = llm.usage()
    assert snapshot.calls == 1 and "extract" not in snapshot.by_stage
    assert usage.by_stage["discover"]["calls"] == 1
    assert usage.by_stage["extract"]["calls"] == 2
    assert set(usage.by_stage["extract"]) >= {
        "calls",
        "cache_hits",
        "prompt_tokens",
        "completion_tokens",
        "failures",
    }
    stages = usage.by_stage.values()
    assert usage.prompt_tokens == sum(s["prompt_tokens"] for s in stages)
    assert usage.completion_tokens == sum(s["completion_tokens"] for s in stages) > 0


# ------------------------------------------------------------------ fake backend via factory


class Kind(BaseModel):
    label: Literal["book", "film"]
    names: list[str]
    score: float | None
    nested: Capital


def test_minimal_instance_validates() -> None:
    value = minimal_instance(Kind.model_json_schema())
    assert Kind.model_validate(value).label == "book"


def test_factory_fake_backend() -> None:
    with make_llm(LLMSettings.model_validate({"backend": "fake"})) as llm:
        answer = llm.complete(LLMRequest(messages=(), schema=Kind))
        assert answer.ok and llm.model_id == "fake"


def test_schema_default_responder_is_json() -> None:
    assert json.loads(schema_default_responder((), Capital.model_json_schema())) == {
        "country": "",
        "capital": "",
    }
