"""The LLM stages' chunks on the configured task runner: `stage_runner(settings, local=...)`
yields the LLM and the `submit` that `kgenrich.runs.llm_stages` uses.

With the "thread" runner both are the flow's own: one client, whose concurrency cap every
chunk task shares. With the others each chunk is a Prefect task on a worker: the worker builds
its own client from the settings (`RemoteLLM`, once per process), runs the chunk job and sends
back the outcome and its client's usage. The state store and its chunk commits stay in the flow
process, so a killed run resumes after its last committed chunk on every runner.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from prefect import Task
from prefect.cache_policies import NONE

from kgenrich.flows.runners import check_runner, prefect_api_url, ready_workers, task_runner
from kgenrich.kg.records import Item
from kgenrich.pipeline.llm.base import LLM
from kgenrich.pipeline.llm.factory import embedded_server, make_llm
from kgenrich.pipeline.llm.worker import ClientRecipe, ClientUsage, RemoteLLM, client_usage
from kgenrich.runs.chunks import CHUNK_JOBS
from kgenrich.runs.engine import ChunkFuture
from kgenrich.runs.llm_stages import StageSubmit
from kgenrich.runs.outcomes import ChunkOutcome
from kgenrich.settings import Settings


@dataclass(frozen=True)
class WorkerResult:
    """What a worker sends back for one chunk."""

    outcome: ChunkOutcome
    usage: ClientUsage | None  # None when the stage asked no LLM (discovery with spaCy only)


def run_chunk(stage: str, payload: bytes) -> WorkerResult:
    """One stage on one chunk, in a worker. `payload` is the pickled (chunk, keyword
    arguments): one opaque value, so Prefect neither walks nor validates the records."""
    chunk, kwargs = pickle.loads(payload)  # written by this run's flow process
    llm = kwargs.get("llm")
    outcome = CHUNK_JOBS[stage](chunk, **kwargs)
    usage = client_usage(llm.recipe) if isinstance(llm, RemoteLLM) else None
    return WorkerResult(outcome=outcome, usage=usage)


#: One task per stage, named like the thread runner's (`flows.enrich.STAGE_TASKS`).
REMOTE_TASKS: dict[str, Task[..., WorkerResult]] = {
    name: Task(fn=run_chunk, name=name, cache_policy=NONE, retries=1, retry_delay_seconds=5)
    for name in CHUNK_JOBS
}


class _OutcomeFuture:
    """A worker's future as the stage engine wants it: `result()` is the chunk's outcome, and
    the worker client's usage goes to the flow's `RemoteLLM` on the way."""

    def __init__(self, future: Any, llm: RemoteLLM) -> None:
        self._future, self._llm = future, llm

    def result(self) -> ChunkOutcome:
        done: WorkerResult = self._future.result()
        if done.usage is not None:
            self._llm.record(done.usage)
        return done.outcome

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        self._future.add_done_callback(lambda _: fn(self))


@dataclass(frozen=True)
class StageRunner:
    """The LLM the stages get, how a chunk is submitted, and how many worker processes (each
    with its own client and concurrency cap) share the work."""

    llm: LLM
    submit: StageSubmit
    workers: int
    kind: str = "thread"

    def summary(self) -> dict[str, Any]:
        """The run report's line: the runner, its worker processes and how many of their
        clients reported LLM usage."""
        line: dict[str, Any] = {"kind": self.kind, "workers": self.workers}
        if isinstance(self.llm, RemoteLLM):
            line["worker clients"] = self.llm.clients
        return line


@contextmanager
def stage_runner(settings: Settings, *, local: StageSubmit) -> Iterator[StageRunner]:
    """The configured runner for the LLM stages, started; stopped (with the embedded server
    and a local cluster) on exit. `local` submits to the flow's own thread runner.

    Raises:
        ConfigError: as `flows.runners.check_runner`.
    """
    r = settings.task_runner
    if r.kind == "thread" and r.address is None:
        with make_llm(settings.llm) as llm:
            yield StageRunner(llm=llm, submit=local, workers=1)
        return
    check_runner(settings, api_url=prefect_api_url())
    with ExitStack() as stack:
        # The flow process runs the embedded server; workers on this host share it by URL.
        served = (stack.enter_context(embedded_server(settings.llm))
                  if settings.llm.backend == "embedded" else None)
        llm = RemoteLLM(ClientRecipe(settings.llm, embedded_at=served))
        runner = stack.enter_context(task_runner(r.kind, workers=r.workers, address=r.address))
        workers = ready_workers(runner, r.kind, workers=r.workers)

        def submit(stage: str, chunk: list[Item], kwargs: dict[str, Any]) -> ChunkFuture:
            payload = pickle.dumps((chunk, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
            future = runner.submit(REMOTE_TASKS[stage],
                                   parameters={"stage": stage, "payload": payload})
            return _OutcomeFuture(future, llm)

        yield StageRunner(llm=llm, submit=submit, workers=workers, kind=r.kind)


def record_flow_usage(llm: LLM) -> None:
    """Count what the flow process itself asked through a `RemoteLLM` (the calibration probes
    run there, before the stages), so the run's usage and health cover it."""
    if isinstance(llm, RemoteLLM):
        llm.record(client_usage(llm.recipe), worker=False)
