"""`kgenrich run --task-runner dask` on a process-based Dask `LocalCluster` with 2 workers (and
`--task-runner ray` on a local 2-CPU Ray instance, when `prefect-ray` is installed), reporting
to a real `prefect server start`, against the scripted LLM server on 127.0.0.1: the worker
processes build their own clients and answer chunks, every request is counted once, and the
graph is the thread runner's, triple for triple."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kgenrich.flows.serve import stop_process_group
from kgenrich.testing import TEST_KEY, ScriptedServer, per_relation

DATA = Path(__file__).resolve().parents[1] / "data"


@per_relation
def _answer(body: dict[str, Any]) -> str:
    """A model that names a director for every film (from its title) and extracts nothing."""
    system = body["messages"][0]["content"]
    user = body["messages"][-1]["content"]
    if "named entities" in system:
        return '{"entities": []}'
    if "extract facts" in system:
        return '{"facts": []}'
    if "Missing relation: directed_by" in user:
        title = user.split("Movie: ", 1)[-1].split("\n", 1)[0]
        return json.dumps({"tails": [f"Director of {title}"]})
    return '{"tails": []}'


def _command(tmp_path: Path, name: str, base_url: str, *extra: str) -> list[str]:
    return [str(Path(sys.executable).parent / "kgenrich"), "run",
            "--catalog", str(DATA / "catalog.csv"), "--seed", str(DATA / "seed.tsv"),
            "--text-col", "description", "--attr", "genres=has_genre",
            "--attr", "country=country_of_origin",
            "--out", str(tmp_path / name), "--run-name", name,
            "--backend", "openai", "--base-url", base_url, "--model", "scripted-model",
            "--set", "llm.cache_dir=null", "--set", "chunk_size=2",
            "--set", "complete.relations=[\"directed_by\"]", "--set", "complete.samples=1",
            "--set", "verify.epochs=5", "--set", "verify.dim=16",
            "--set", f"reports_dir={tmp_path / 'reports'}", *extra]


def _run(cmd: list[str], env: dict[str, str], log: Path) -> int:
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, env=env, cwd=log.parent, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=900)
        finally:
            stop_process_group(proc)  # the cluster's workers too, if anything is left


def _graph(out: Path) -> list[tuple[Any, ...]]:
    rows = []
    for line in (out / "triples.jsonl").read_text(encoding="utf-8").splitlines():
        t = json.loads(line)
        p = t["provenance"]
        rows.append((t["head"], t["relation"], t["tail"], p["source"], p.get("item_id"),
                     p["decision"]))
    return sorted(rows)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dask", "ray"])
def test_run_on_a_two_worker_cluster_matches_the_thread_runner(
    tmp_path: Path, local_prefect_api: str, kind: str
) -> None:
    pytest.importorskip({"dask": "prefect_dask", "ray": "prefect_ray"}[kind])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "KGENRICH_"))}
    env.update({"PREFECT_API_URL": local_prefect_api, "PREFECT_HOME": str(tmp_path / "home"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                "KGENRICH_LLM__API_KEY": TEST_KEY})
    with ScriptedServer(reply=_answer) as server:
        code = _run(_command(tmp_path, kind, server.base_url, "--task-runner", kind,
                             "--set", "task_runner.workers=2"), env, tmp_path / f"{kind}.log")
        assert code == 0, (tmp_path / f"{kind}.log").read_text()[-4000:]
        asked = server.chat_count
        thread = _run(_command(tmp_path, "thread", server.base_url), env,
                      tmp_path / "thread.log")
        assert thread == 0, (tmp_path / "thread.log").read_text()[-4000:]
        assert server.chat_count - asked == asked  # the same questions, each asked once
    report = json.loads((tmp_path / kind / "report.json").read_text())
    runner = report["extra"]["task runner"]
    assert (runner["kind"], runner["workers"]) == (kind, 2)
    if kind == "dask":  # both worker processes built a client and answered chunks
        assert runner["worker clients"] == 2
    else:  # Ray starts worker processes as it needs them
        assert runner["worker clients"] >= 1
    # the flow summed the workers' usage, each client once: every request counted once
    assert report["extra"]["health"]["requests"] == asked > 0
    assert sum(s["llm_calls"] for s in report["stages"]) == asked
    graph = _graph(tmp_path / kind)
    assert graph == _graph(tmp_path / "thread")
    assert any(row[1] == "directed_by" and row[3] == "completed" for row in graph)
