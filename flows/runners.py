"""Task runners for scaling the `enrich` flow out: `task_runner(kind)` returns a Prefect task
runner; the flow applies it with `enrich.with_options(task_runner=task_runner(kind))`.

Kinds (the extras are optional installs; see the README, "Scale-out"):
- "thread": Prefect's `ThreadPoolTaskRunner` (default; no extra needed).
- "dask-threads": `prefect_dask.DaskTaskRunner` on a threaded `LocalCluster`
  (`processes=False`): one process, so it works with Prefect's ephemeral API.
- "dask": the same on a process `LocalCluster` (or an existing scheduler at `address`).
- "ray": `prefect_ray.RayTaskRunner` (local Ray, or an existing cluster at `address`).

Worker processes ("dask", "ray") report task runs to the Prefect API themselves, so they need a
running Prefect server (`prefect server start`, `PREFECT_API_URL` set). Without one, each worker
process starts its own ephemeral API and the run fails, leaving a server process behind
(measured with Prefect 3.8). `task_runner` refuses those kinds up front instead.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from prefect.settings import PREFECT_API_URL
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from kgenrich.errors import ConfigError

RunnerKind = Literal["thread", "dask", "dask-threads", "ray"]
KINDS: tuple[RunnerKind, ...] = ("thread", "dask", "dask-threads", "ray")
_NEEDS_SERVER: frozenset[str] = frozenset({"dask", "ray"})


def prefect_api_url() -> str | None:
    """The Prefect API in use (setting or environment), or None for the ephemeral API."""
    value = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    return str(value) if value else None


def task_runner(
    kind: RunnerKind = "thread",
    *,
    workers: int | None = None,
    address: str | None = None,
) -> TaskRunner[Any]:
    """A Prefect task runner of `kind`.

    Args:
        kind: "thread", "dask", "dask-threads" or "ray" (see the module docstring).
        workers: threads ("thread", "dask-threads"), worker processes ("dask", one thread
            each) or CPUs ("ray"); None lets the library choose (CPU count).
        address: an existing Dask scheduler (`tcp://host:8786`) or Ray cluster
            (`ray://host:10001`) to use instead of starting a local one.

    Raises:
        ConfigError: unknown kind, workers < 1, the kind's package is not installed, or a
            process-based kind without a running Prefect server.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown task runner {kind!r}; choose one of {', '.join(KINDS)}")
    if workers is not None and workers < 1:
        raise ConfigError(f"task runner workers must be >= 1, got {workers}")
    if kind == "thread":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind in _NEEDS_SERVER and prefect_api_url() is None:
        raise ConfigError(
            f"task runner {kind!r} runs tasks in worker processes, which need a running Prefect "
            "server: start one with `prefect server start` and set PREFECT_API_URL (e.g. "
            "http://127.0.0.1:4200/api), or use 'dask-threads' / 'thread'"
        )
    if kind in ("dask", "dask-threads"):
        return _dask(kind, workers=workers, address=address)
    return _ray(workers=workers, address=address)


def _dask(kind: str, *, workers: int | None, address: str | None) -> TaskRunner[Any]:
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as err:
        raise ConfigError(
            f"task runner {kind!r} needs prefect-dask: pip install 'kgenrich[dask]'"
        ) from err
    if address is not None:
        return DaskTaskRunner(address=address)
    cluster_kwargs: dict[str, Any]
    if kind == "dask-threads":
        # One worker process-less cluster: tasks are threads of this process, like "thread",
        # but scheduled by Dask (and its dashboard, if bokeh is installed).
        cluster_kwargs = {"processes": False, "n_workers": 1, "threads_per_worker": workers or
                          (os.cpu_count() or 1), "dashboard_address": None}
    else:
        cluster_kwargs = {"processes": True, "n_workers": workers or (os.cpu_count() or 1),
                          "threads_per_worker": 1, "dashboard_address": None}
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=cluster_kwargs)


def _ray(*, workers: int | None, address: str | None) -> TaskRunner[Any]:
    try:
        from prefect_ray import RayTaskRunner
    except ImportError as err:
        raise ConfigError("task runner 'ray' needs prefect-ray: pip install 'kgenrich[ray]'") \
            from err
    init_kwargs: dict[str, Any] = {"include_dashboard": False}
    if workers is not None and address is None:
        init_kwargs["num_cpus"] = workers
    return RayTaskRunner(address=address, init_kwargs=init_kwargs)
