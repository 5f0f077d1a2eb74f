"""Whether a finished run did its work (`kgenrich.runs.health`): no LLM answer at all, or more
than the allowed share of failed items, is a `RunIncomplete` (exit 3) with the endpoint's error
in one line; anything else is a run that did its work."""

from __future__ import annotations

from pydantic import BaseModel

from kgenrich.errors import RunIncomplete
from kgenrich.kg.records import StageResult
from kgenrich.pipeline.llm.base import LLMRequest, UsageTotals
from kgenrich.runs.bookkeeping import FailureRow
from kgenrich.runs.engine import StageRun
from kgenrich.runs.health import RunHealth, incomplete, main_error, run_health
from kgenrich.testing.scripted_server import ClientFactory


class _Name(BaseModel):
    name: str


HTTP_401 = "http://127.0.0.1:9/v1 answered HTTP 401: invalid api key"
CIRCUIT = "endpoint http://127.0.0.1:9/v1 looks down; circuit open (failing fast for another 3s)"


def _failures(n: int, error: str = HTTP_401) -> list[FailureRow]:
    return [FailureRow(item_id=f"m{i}", stage="extract", error=error) for i in range(n)]


def test_no_answer_at_all_is_incomplete_with_the_endpoint_error() -> None:
    health = run_health(usage=UsageTotals(calls=30, answered=0),
                        runs={"extract": StageRun(result=StageResult(), asked=30)},
                        failures=_failures(30), items=30)
    problem = incomplete(health, max_failed_item_share=1.0)  # the share alone would pass
    assert isinstance(problem, RunIncomplete) and problem.exit_code == 3
    assert str(problem) == ("no LLM answer came back (30 requests sent, none answered): "
                            + HTTP_401)


def test_failed_share_above_the_setting_is_incomplete() -> None:
    health = RunHealth(requests=40, answered=20, items=40, failed_items=21, error=HTTP_401)
    problem = incomplete(health, max_failed_item_share=0.5)
    assert problem is not None and str(problem).startswith("21 of 40 items failed")
    assert incomplete(health.as_dict(), max_failed_item_share=0.6) is None


def test_a_run_that_did_its_work_passes() -> None:
    assert incomplete(RunHealth(requests=10, answered=10, items=10, failed_items=0, error=None),
                      max_failed_item_share=0.0) is None
    # everything from the cache or nothing to ask: no request, nothing failed
    assert incomplete(RunHealth(requests=0, answered=0, items=0, failed_items=0, error=None),
                      max_failed_item_share=0.0) is None


def test_items_to_ask_are_the_items_not_reused() -> None:
    runs = {"extract": StageRun(result=StageResult(), asked=4, reused=96),
            "complete": StageRun(result=StageResult(), asked=10, reused=90)}
    health = run_health(usage=UsageTotals(calls=14, answered=9), runs=runs,
                        failures=_failures(6), items=100)
    assert (health.items, health.failed_items) == (10, 6)


def test_main_error_is_the_cause_on_one_line() -> None:
    errors = [CIRCUIT, CIRCUIT.replace("3s", "2s"), CIRCUIT.replace("3s", "1s"),
              "connection error:\n  refused", "connection error:\n  refused"]
    assert main_error(errors) == "connection error: refused"
    assert main_error([CIRCUIT]) == CIRCUIT
    assert main_error([]) is None
    assert len(main_error(["x" * 1000]) or "") == 240


def test_dead_endpoint_behind_an_open_breaker_is_incomplete(make_client: ClientFactory) -> None:
    """A real client against a closed port on 127.0.0.1: the breaker opens after two attempts,
    the rest fail fast; the summary names the cause, not the open circuit."""
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    llm = make_client(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0,
                      breaker_threshold=2, breaker_window=2)
    errors = []
    for i in range(6):
        answer = llm.complete(LLMRequest(messages=({"role": "user", "content": "?"},),
                                         schema=_Name, item_id=f"m{i}", stage="extract"))
        errors.append(answer.error or "")
    assert sum("circuit open" in e for e in errors) == 4
    health = run_health(usage=llm.usage(),
                        runs={"extract": StageRun(result=StageResult(), asked=6)},
                        failures=[FailureRow(item_id=f"m{i}", stage="extract", error=e)
                                  for i, e in enumerate(errors)], items=6)
    assert (health.requests, health.answered) == (2, 0)
    problem = incomplete(health, max_failed_item_share=1.0)
    assert problem is not None and "connection error" in str(problem)
    assert "circuit open" not in str(problem)
