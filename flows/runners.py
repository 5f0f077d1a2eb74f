"""Task runners for the LLM stages' chunks: the kinds (`kgenrich.settings.RunnerKind`), what
each needs, checked by `check_runner` without importing Prefect (the CLI calls it before any
expensive step), and `task_runner(kind)`, the Prefect task runner of a kind.

Kinds (the extras are optional installs; see the README, "Scale-out"):
- "thread": Prefect's `ThreadPoolTaskRunner` (default; no extra needed).
- "dask-threads": `prefect_dask.DaskTaskRunner` on a threaded `LocalCluster`
  (`processes=False`): one process, so it works with Prefect's ephemeral API.
- "dask": the same on a process `LocalCluster` (or an existing scheduler at `address`).
- "ray": `prefect_ray.RayTaskRunner` (local Ray, or an existing cluster at `address`).

Worker processes ("dask", "ray", or any cluster at an address) report task runs to the Prefect
API themselves, so they need a running Prefect server (`prefect server start`,
`PREFECT_API_URL` set). Without one, each worker process starts its own ephemeral API and the
run fails, leaving a server process behind (measured with Prefect 3.8); they are refused up
front instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import ipaddress
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args
from urllib.parse import urlsplit

from kgenrich.errors import ConfigError
from kgenrich.settings import RunnerKind, Settings

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

KINDS: tuple[RunnerKind, ...] = get_args(RunnerKind)
#: What the workers import before their first chunk (it imports the whole pipeline).
WORKER_MODULE = "kgenrich.flows.remote"


@dataclass(frozen=True)
class RunnerNeeds:
    """What one kind needs installed, and whether its tasks run in other processes."""

    modules: tuple[str, ...]  # import names
    extra: str | None  # the kgenrich extra that installs them
    processes: bool  # worker processes: they report to the Prefect API themselves


NEEDS: dict[RunnerKind, RunnerNeeds] = {
    "thread": RunnerNeeds((), None, processes=False),
    "dask-threads": RunnerNeeds(("prefect_dask", "distributed"), "dask", processes=False),
    "dask": RunnerNeeds(("prefect_dask", "distributed"), "dask", processes=True),
    "ray": RunnerNeeds(("prefect_ray", "ray"), "ray", processes=True),
}


def prefect_api_url() -> str | None:
    """The Prefect API in use (setting or environment), or None for the ephemeral API."""
    from prefect.settings import PREFECT_API_URL

    value = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    return str(value) if value else None


def _needs(kind: str) -> RunnerNeeds:
    if kind not in NEEDS:
        raise ConfigError(f"unknown task runner {kind!r}; choose one of {', '.join(KINDS)}")
    return NEEDS[kind]


def _check_installed(kind: str) -> None:
    needs = _needs(kind)
    missing = [m for m in needs.modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"task runner {kind!r} needs {', '.join(missing)}, which is not "
                          f"installed: pip install 'kgenrich[{needs.extra}]'")


def _check_server(kind: str, api_url: str | None) -> None:
    if api_url is None:
        raise ConfigError(
            f"task runner {kind!r} runs tasks in worker processes, which need a running Prefect "
            "server: start one with `prefect server start` and set PREFECT_API_URL (e.g. "
            "http://127.0.0.1:4200/api), or use 'dask-threads' / 'thread'"
        )


def _loopback(address: str) -> bool:
    host = urlsplit(address if "://" in address else f"tcp://{address}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_runner(settings: Settings, *, api_url: str | None) -> None:
    """Raise ConfigError, one line naming the fix, unless the configured task runner can run:
    its package is installed, worker processes have a Prefect server (`api_url`), and the
    embedded LLM, which serves on 127.0.0.1 of the flow's machine, is not asked from a cluster
    elsewhere. Imports no Prefect."""
    r = settings.task_runner
    needs = _needs(r.kind)
    if r.address is not None and r.kind == "thread":
        raise ConfigError("task_runner.address needs task_runner.kind 'dask' or 'ray'; the "
                          "'thread' runner runs in this process")
    _check_installed(r.kind)
    if needs.processes or r.address is not None:
        _check_server(r.kind, api_url)
    if r.address is not None and settings.llm.backend == "embedded" and not _loopback(r.address):
        raise ConfigError(
            f"llm.backend 'embedded' serves on 127.0.0.1 of this machine, which the workers of "
            f"the cluster at {r.address} cannot reach: serve the model where they can (e.g. "
            "llama.cpp's llama-server) and use llm.backend=openai with its llm.base_url")


def task_runner(
    kind: RunnerKind = "thread",
    *,
    workers: int | None = None,
    address: str | None = None,
) -> TaskRunner[Any]:
    """A Prefect task runner of `kind`.

    Args:
        kind: "thread", "dask", "dask-threads" or "ray" (see the module docstring).
        workers: threads ("thread", "dask-threads"), worker processes ("dask", two threads
            each) or CPUs ("ray"); None lets the library choose (CPU count).
        address: an existing Dask scheduler (`tcp://host:8786`) or Ray cluster
            (`ray://host:10001`) to use instead of starting a local one.

    Raises:
        ConfigError: unknown kind, workers < 1, the kind's package is not installed, or a
            process-based kind without a running Prefect server.
    """
    _needs(kind)
    if workers is not None and workers < 1:
        raise ConfigError(f"task runner workers must be >= 1, got {workers}")
    if kind == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers)
    _check_installed(kind)
    if NEEDS[kind].processes or address is not None:
        _check_server(kind, prefect_api_url())
    if kind in ("dask", "dask-threads"):
        return _dask(kind, workers=workers, address=address)
    return _ray(workers=workers, address=address)


def _dask(kind: str, *, workers: int | None, address: str | None) -> TaskRunner[Any]:
    from prefect_dask import DaskTaskRunner

    if address is not None:
        return DaskTaskRunner(address=address)
    cluster_kwargs: dict[str, Any]
    if kind == "dask-threads":
        # One worker process-less cluster: tasks are threads of this process, like "thread",
        # but scheduled by Dask (and its dashboard, if bokeh is installed).
        cluster_kwargs = {"processes": False, "n_workers": 1, "threads_per_worker": workers or
                          (os.cpu_count() or 1), "dashboard_address": None}
    else:
        # Two threads per worker process: its next chunk's task bookkeeping (Prefect API
        # calls) overlaps the current chunk's LLM calls instead of idling the client between
        # chunks (measured: 1 thread reached 79% of the ideal rate at concurrency 4); the
        # process's one client caps the requests of both.
        cluster_kwargs = {"processes": True, "n_workers": workers or (os.cpu_count() or 1),
                          "threads_per_worker": 2, "dashboard_address": None}
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=cluster_kwargs)


def _ray(*, workers: int | None, address: str | None) -> TaskRunner[Any]:
    from prefect_ray import RayTaskRunner

    init_kwargs: dict[str, Any] = {"include_dashboard": False}
    if workers is not None and address is None:
        init_kwargs["num_cpus"] = workers
    return RayTaskRunner(address=address, init_kwargs=init_kwargs)


def _import_worker_module() -> str:
    importlib.import_module(WORKER_MODULE)
    return WORKER_MODULE


def ready_workers(runner: TaskRunner[Any], kind: RunnerKind, *, workers: int | None) -> int:
    """Wait for a started runner's workers, have each import the pipeline (~20 s per process,
    paid here rather than by its first chunk), and return how many worker processes (LLM
    clients) there are: 1 for "dask-threads", whose threads share this process's client."""
    if kind in ("dask", "dask-threads"):
        client = runner.client  # type: ignore[attr-defined]
        if client.cluster is not None:  # a local cluster: all of it
            client.wait_for_workers(len(client.cluster.workers))
        else:
            client.wait_for_workers(1)
        ready = len(client.run(_import_worker_module))
        return 1 if kind == "dask-threads" and client.cluster is not None else max(1, ready)
    if kind == "ray":
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", workers or 1)))
    return workers or (os.cpu_count() or 1)
