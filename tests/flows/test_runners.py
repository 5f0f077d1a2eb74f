"""Task runners for scale-out: a flow mapping a task over chunks gives the same result under the
thread runner and Dask (threaded LocalCluster, no Prefect server of its own needed)."""

from __future__ import annotations

from typing import Any

import pytest
from prefect import flow, task
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner

from kgenrich.errors import ConfigError
from kgenrich.flows.runners import task_runner

CHUNKS = [list(range(i, i + 5)) for i in range(0, 40, 5)]


@task
def chunk_total(chunk: list[int]) -> dict[str, int]:
    return {"n": len(chunk), "sum": sum(x * x for x in chunk)}


@flow
def over_chunks(chunks: list[list[int]]) -> list[dict[str, int]]:
    futures = chunk_total.map(chunks)
    return [f.result() for f in futures]


def _run(runner: Any) -> list[dict[str, int]]:
    return over_chunks.with_options(task_runner=runner)(CHUNKS)


def test_threaded_dask_matches_thread_runner() -> None:
    pytest.importorskip("prefect_dask")
    from prefect_dask import DaskTaskRunner

    expected = _run(task_runner("thread", workers=2))
    dask_runner = DaskTaskRunner(
        cluster_kwargs={"processes": False, "n_workers": 1, "threads_per_worker": 2}
    )
    assert _run(dask_runner) == expected
    assert _run(task_runner("dask-threads", workers=2)) == expected
    assert expected == [{"n": 5, "sum": sum(x * x for x in c)} for c in CHUNKS]


def test_kinds_and_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(task_runner("thread", workers=3), ThreadPoolTaskRunner)
    with pytest.raises(ConfigError, match="unknown task runner"):
        task_runner("spark")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=">= 1"):
        task_runner("thread", workers=0)
    # Worker processes need a real Prefect server; refused up front without one.
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(updates={PREFECT_API_URL: None}):
        # both process-based; ray is an optional extra (without it the missing package is
        # the first error, tests/unit/test_runner_check.py)
        import importlib.util

        for kind in ["dask"] + (["ray"] if importlib.util.find_spec("prefect_ray") else []):
            with pytest.raises(ConfigError, match="prefect server start"):
                task_runner(kind)
        task_runner("dask-threads")  # one process: fine without a server
