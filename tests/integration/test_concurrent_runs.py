"""Two `kgenrich run` processes started at once on one machine, each with Prefect's temporary
API server (no PREFECT_API_URL), both complete: each gets its own Prefect home, where they used
to share one SQLite database and one of them died starting its server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kgenrich.testing import TEST_KEY, ScriptedServer, per_relation

DATA = Path(__file__).resolve().parents[1] / "data"


@per_relation
def _answer(body: dict[str, Any]) -> str:
    """A model that knows one director: enough for every stage to run and parse."""
    system = body["messages"][0]["content"]
    user = body["messages"][-1]["content"]
    if "named entities" in system:
        return '{"entities": []}'
    if "extract facts" in system:
        return '{"facts": []}'
    if "Movie: Four Rooms\n" in user and "Missing relation: directed_by" in user:
        return json.dumps({"tails": ["Quentin Tarantino"]})
    return '{"tails": []}'


def _command(tmp_path: Path, name: str, base_url: str) -> list[str]:
    return [str(Path(sys.executable).parent / "kgenrich"), "run",
            "--catalog", str(DATA / "catalog.csv"), "--seed", str(DATA / "seed.tsv"),
            "--text-col", "description", "--attr", "director=directed_by",
            "--attr", "genres=has_genre", "--attr", "country=country_of_origin",
            "--out", str(tmp_path / name), "--run-name", name,
            "--backend", "openai", "--base-url", base_url, "--model", "scripted-model",
            "--set", "llm.cache_dir=null", "--set", "verify.epochs=5", "--set", "verify.dim=16",
            "--set", f"reports_dir={tmp_path / 'reports'}"]


@pytest.mark.slow
def test_two_concurrent_cli_runs_without_a_server_both_complete(tmp_path: Path) -> None:
    # Both get the same PREFECT_HOME, as two runs by one user do (~/.prefect): the CLI gives
    # each its own home, so nothing of Prefect's lands in the shared one.
    shared_home = tmp_path / "shared-prefect-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(shared_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                "KGENRICH_LLM__API_KEY": TEST_KEY})
    with ScriptedServer(reply=_answer) as server:
        procs = {}
        for name in ("first", "second"):
            log = (tmp_path / f"{name}.log").open("wb")
            procs[name] = (subprocess.Popen(_command(tmp_path, name, server.base_url),
                                            cwd=tmp_path, env=env, stdout=log,
                                            stderr=subprocess.STDOUT), log)
        codes = {}
        for name, (proc, log) in procs.items():
            try:
                codes[name] = proc.wait(timeout=900)
            finally:
                if proc.poll() is None:
                    proc.kill()
                log.close()
        assert server.chat_count > 0
    for name, code in codes.items():
        assert code == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
        out = tmp_path / name
        assert (out / "graph.ttl").is_file() and (out / "report.md").is_file()
        assert (out / "triples.jsonl").read_text().strip()
    assert not (shared_home / "prefect.db").exists()
