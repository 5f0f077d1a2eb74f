"""Task-runner workers build their own LLM client: a `RemoteLLM` pickles as its recipe (no
client, lock or socket), each process builds one client per run from it, and the flow sums the
workers' cumulative usage reports, each client counted once."""

from __future__ import annotations

import pickle

import pytest
from pydantic import BaseModel, SecretStr

from kgenrich.pipeline.llm import worker
from kgenrich.pipeline.llm.base import LLMRequest
from kgenrich.pipeline.llm.core import BackendUsage
from kgenrich.pipeline.llm.worker import (
    ClientRecipe,
    ClientUsage,
    RemoteLLM,
    client_usage,
    process_client,
    sum_usage,
)
from kgenrich.settings import LLMSettings
from kgenrich.testing import TEST_KEY, ClientFactory, ScriptedServer


class Answer(BaseModel):
    name: str  # the scripted server's default reply is {"name": "scripted"}


def _recipe(server: ScriptedServer) -> ClientRecipe:
    return ClientRecipe(LLMSettings(backend="openai", base_url=server.base_url,
                                    api_key=SecretStr(TEST_KEY), cache_dir=None, concurrency=2,
                                    backoff_s=0.01))


def _request(i: int) -> LLMRequest[Answer]:
    return LLMRequest(messages=({"role": "user", "content": f"question {i}"},), schema=Answer,
                      stage="complete", item_id=str(i))


def test_a_client_cannot_be_pickled_but_a_remote_llm_travels_as_its_recipe(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(make_client())  # its locks: why workers build their own
    llm = RemoteLLM(_recipe(server))
    assert llm.complete(_request(0)).ok  # this process's client exists now
    copy = pickle.loads(pickle.dumps(llm))
    assert copy.recipe == llm.recipe
    assert copy.usage().calls == 0  # reports stay with the flow's object
    # in the same process the copy uses the same client: one cap per process and run
    assert process_client(copy.recipe) is process_client(llm.recipe)


def test_each_run_gets_its_own_client_and_old_ones_are_closed(server: ScriptedServer) -> None:
    first = _recipe(server)
    client = process_client(first)
    assert process_client(first) is client
    later = [_recipe(server) for _ in range(worker.KEPT_CLIENTS)]
    others = [process_client(r) for r in later]
    assert client not in others
    assert first.run not in worker._clients  # evicted (and closed) once KEPT_CLIENTS newer
    assert process_client(first) is not client  # a new one if that run asks again


def test_a_worker_reports_its_clients_cumulative_usage(server: ScriptedServer) -> None:
    recipe = _recipe(server)
    llm = RemoteLLM(recipe)
    answers = llm.complete_many([_request(i) for i in range(5)])
    assert all(a.ok for a in answers) and server.chat_count == 5
    report = client_usage(recipe)
    assert report.usage.calls == 5 and report.usage.by_stage["complete"]["calls"] == 5
    assert report.client.endswith(recipe.run)


def _usage(calls: int, *, stage: str = "extract", exhausted: bool = False) -> BackendUsage:
    return BackendUsage(calls=calls, answered=calls, prompt_tokens=10 * calls,
                        by_stage={stage: {"calls": calls, "answered": calls}},
                        budget_exhausted=exhausted)


def test_the_flow_counts_each_worker_client_once_at_its_latest_report(
    server: ScriptedServer,
) -> None:
    llm = RemoteLLM(_recipe(server))
    for client, calls in (("a", 3), ("b", 2), ("a", 5), ("a", 4)):  # "a": 4 arrives late
        llm.record(ClientUsage(client=client, usage=_usage(calls)))
    total = llm.usage()
    assert (total.calls, total.answered, total.prompt_tokens) == (7, 7, 70)
    assert total.by_stage == {"extract": {"calls": 7, "answered": 7}}
    assert llm.clients == 2 and not total.budget_exhausted


def test_usage_sums_stage_by_stage_and_any_exhausted_budget_counts() -> None:
    total = sum_usage([_usage(2, stage="discover"), _usage(3, exhausted=True), _usage(1)])
    assert total.calls == 6 and total.budget_exhausted
    assert total.by_stage == {"discover": {"calls": 2, "answered": 2},
                              "extract": {"calls": 4, "answered": 4}}
