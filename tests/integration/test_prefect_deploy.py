"""The committed deployment in docs/prefect.yaml works as the README says: `prefect deploy` on a
real `prefect server start`, a process worker, and a run triggered through the API completes
and writes its graph."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kgenrich.data import ontology
from kgenrich.flows.serve import stop_process_group
from kgenrich.testing import TEST_KEY, ScriptedServer, per_relation

DATA = Path(__file__).resolve().parents[1] / "data"
PREFECT_YAML = Path(__file__).resolve().parents[2] / "docs" / "prefect.yaml"


def _prefect(*args: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", *args], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_prefect_yaml_deploys_and_a_worker_completes_its_run(
    tmp_path: Path, local_prefect_api: str
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    work = tmp_path / "work"  # the operator's folder: KGENRICH_WORKDIR
    work.mkdir()
    for src, name in ((DATA / "catalog.csv", "catalog.csv"), (DATA / "seed.tsv", "seed.tsv"),
                      (ontology("movies"), "movies.json")):
        shutil.copy(src, work / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "KGENRICH_"))}
    env.update({"PREFECT_API_URL": local_prefect_api, "PREFECT_HOME": str(tmp_path / "home"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                "HF_HUB_OFFLINE": "1", "KGENRICH_WORKDIR": str(work)})
    # `prefect deploy` runs from another folder than the worker: nothing depends on the cwd.
    _prefect("work-pool", "create", "kgenrich", "--type", "process", env=env, cwd=tmp_path)
    _prefect("deploy", "--all", "--prefect-file", str(PREFECT_YAML), env=env, cwd=tmp_path)
    with ScriptedServer(reply=per_relation(
            lambda body: '{"entities": [], "facts": [], "tails": []}')) \
            as server:
        worker_env = {**env, "KGENRICH_LLM__BASE_URL": server.base_url,
                      "KGENRICH_LLM__API_KEY": TEST_KEY,
                      "KGENRICH_LLM__CACHE_DIR": str(tmp_path / "cache"),
                      "KGENRICH_VERIFY__EPOCHS": "5", "KGENRICH_VERIFY__DIM": "16"}
        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", "kgenrich"],
            env=worker_env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            with temporary_settings(updates={PREFECT_API_URL: local_prefect_api}), \
                    get_client(sync_client=True) as client:
                dep = client.read_deployment_by_name("enrich/nightly")
                assert dep.entrypoint == "kgenrich.flows.enrich.enrich"
                assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * *"]
                run = client.create_flow_run_from_deployment(dep.id)
                deadline = time.monotonic() + 600
                while True:
                    state = client.read_flow_run(run.id).state
                    if state is not None and state.is_final():
                        break
                    assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                    assert time.monotonic() < deadline, "the run did not finish"
                    time.sleep(2)
            assert state.is_completed(), (state, (tmp_path / "worker.log").read_text()[-3000:])
        finally:
            stop_process_group(worker)
            log.close()
        assert server.chat_count > 0  # the worker's environment reached the run
    out = work / "out"
    assert (out / "graph.ttl").is_file() and (out / "triples.jsonl").read_text().strip()
    assert (work / "reports" / "nightly" / "report.md").is_file()
