"""LLM clients for task-runner workers: `RemoteLLM` pickles as its recipe (the LLM settings and
the URL of the embedded server the flow process runs) and, in whichever process uses it, calls
that process's own client, built once with `make_llm`. Clients hold locks, sockets and caps, so
they never travel; the flow adds up the usage each worker process reports.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from kgenrich.pipeline.llm.base import LLM, LLMAnswer, LLMRequest, UsageTotals
from kgenrich.pipeline.llm.core import BackendUsage
from kgenrich.pipeline.llm.factory import make_llm
from kgenrich.settings import LLMSettings

T = TypeVar("T", bound=BaseModel)

#: Clients one process keeps (one per run): a worker of a long-lived cluster serves run after
#: run, and each run's client (its connection pool) is closed when it falls out.
KEPT_CLIENTS = 4
_USAGE_COUNTS = tuple(f.name for f in dataclasses.fields(UsageTotals) if f.type in (int, "int"))


@dataclass(frozen=True)
class ClientRecipe:
    """What a process needs to build its own client for one run."""

    settings: LLMSettings
    # The embedded llama.cpp server the flow process started; workers on its host share it.
    embedded_at: str | None = None
    # One client per run and process: usage and the budget count from zero for every run.
    run: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class ClientUsage:
    """One process's client usage so far (cumulative), named by host, process and run."""

    client: str
    usage: BackendUsage


_clients: OrderedDict[str, tuple[LLM, ExitStack]] = OrderedDict()
_clients_lock = threading.Lock()


def process_client(recipe: ClientRecipe) -> LLM:
    """This process's client for `recipe`, built on first use (constructors do no I/O)."""
    with _clients_lock:
        kept = _clients.get(recipe.run)
        if kept is not None:
            _clients.move_to_end(recipe.run)
            return kept[0]
        stack = ExitStack()
        llm = stack.enter_context(make_llm(recipe.settings, embedded_at=recipe.embedded_at))
        _clients[recipe.run] = (llm, stack)
        while len(_clients) > KEPT_CLIENTS:
            _clients.popitem(last=False)[1][1].close()
        return llm


def client_usage(recipe: ClientRecipe) -> ClientUsage:
    """The usage of this process's client for `recipe`, to send back to the flow."""
    usage = process_client(recipe).usage()
    if not isinstance(usage, BackendUsage):  # any LLM's plain totals
        usage = BackendUsage(**dataclasses.asdict(usage))
    return ClientUsage(client=f"{socket.gethostname()}:{os.getpid()}:{recipe.run}", usage=usage)


def sum_usage(parts: Iterable[UsageTotals]) -> BackendUsage:
    """The totals of several clients, stage by stage; the budget ran out if it did in any."""
    total = BackendUsage()
    for part in parts:
        for name in _USAGE_COUNTS:
            setattr(total, name, getattr(total, name) + getattr(part, name))
        for stage, counts in part.by_stage.items():
            into = total.by_stage.setdefault(stage, {})
            for key, value in counts.items():
                into[key] = into.get(key, 0) + value
        total.budget_exhausted |= bool(getattr(part, "budget_exhausted", False))
    return total


def _progress(usage: UsageTotals) -> int:
    # every counter only grows, so the later of two snapshots of one client has the larger sum
    return sum(getattr(usage, name) for name in _USAGE_COUNTS)


class RemoteLLM:
    """An `LLM` for task-runner workers: pickled, it is only its recipe; used, it calls the
    client of the process it is in (`process_client`). In the flow process, `usage()` is the
    sum of what the workers' clients reported through `record`, each counted once.

    Each worker process has its own client, so `concurrency` and the budgets hold per worker
    process: N workers keep up to N x concurrency requests in flight.
    """

    def __init__(self, recipe: ClientRecipe) -> None:
        self.recipe = recipe
        self._reports: dict[str, BackendUsage] = {}
        self._workers: set[str] = set()  # the clients that reported from a worker's chunk
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"recipe": self.recipe}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["recipe"])  # type: ignore[misc]

    @property
    def model_id(self) -> str:
        return process_client(self.recipe).model_id

    def complete(self, request: LLMRequest[T]) -> LLMAnswer[T]:
        return process_client(self.recipe).complete(request)

    def complete_many(self, requests: Sequence[LLMRequest[T]]) -> list[LLMAnswer[T]]:
        return process_client(self.recipe).complete_many(requests)

    def record(self, report: ClientUsage, *, worker: bool = True) -> None:
        """Keep a client's cumulative usage (the latest report of each client wins).
        ``worker=False``: the flow process's own client (its calibration probes), counted in
        ``usage()`` but not among the worker clients; with in-process workers it is the same
        client, so it is never counted twice."""
        with self._lock:
            kept = self._reports.get(report.client)
            if kept is None or _progress(report.usage) >= _progress(kept):
                self._reports[report.client] = report.usage
            if worker:
                self._workers.add(report.client)

    def usage(self) -> BackendUsage:
        with self._lock:
            return sum_usage(list(self._reports.values()))

    @property
    def clients(self) -> int:
        """How many worker clients reported."""
        with self._lock:
            return len(self._workers)
