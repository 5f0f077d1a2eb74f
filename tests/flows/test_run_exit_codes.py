"""`kgenrich run` as a user runs it (a subprocess, Prefect's temporary server) against a real
HTTP server on 127.0.0.1 that answers every request with HTTP 401: the run writes its report
but exits 3 with the endpoint's error on one line, never 0, and never prints the API key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kgenrich.testing import TEST_KEY, ScriptedServer, http_error

DATA = Path(__file__).resolve().parents[1] / "data"


def _kgenrich_run(
    server: ScriptedServer, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    # no PREFECT_API_URL: the run starts Prefect's temporary server, as a new user's would
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["KGENRICH_LLM__API_KEY"] = TEST_KEY
    return subprocess.run(
        [sys.executable, "-m", "kgenrich.cli", "run", "--catalog", str(DATA / "catalog.csv"),
         "--seed", str(DATA / "seed.tsv"), "--text-col", "description",
         "--attr", "director=directed_by", "--attr", "genres=has_genre",
         "--attr", "country=country_of_origin", "--out", str(out),
         "--backend", "openai", "--base-url", server.base_url, "--model", "scripted-model",
         "--set", "verify.epochs=5", "--set", "verify.dim=16", "--set", "llm.backoff_s=0.01",
         "--set", f"reports_dir={out.parent / 'reports'}",
         "--set", f"llm.cache_dir={out.parent / 'cache'}", *extra],
        capture_output=True, text=True, env=env, timeout=600, cwd=out.parent)


def test_run_whose_every_llm_call_gets_401_exits_3(tmp_path: Path) -> None:
    with ScriptedServer() as server:
        server.queue(*[http_error(401, "invalid api key")] * 5000)
        done = _kgenrich_run(server, tmp_path / "out")
        sent = server.chat_count
    assert done.returncode == 3, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert "no LLM answer came back" in errors[0] and "answered HTTP 401" in errors[0]
    assert errors[0].endswith("invalid api key")
    assert f"({sent} requests sent, none answered)" in errors[0]
    assert TEST_KEY not in done.stderr + done.stdout
    assert (tmp_path / "out" / "report.md").is_file()  # the run still reports what it did
