"""`kgenrich run` as a user runs it (a subprocess, Prefect's temporary server) against a real
HTTP server on 127.0.0.1.

- Every request answered with HTTP 401: the run writes its report but exits 3 with the
  endpoint's error on one line, never 0, and never prints the API key.
- A run killed with SIGKILL leaves no uvicorn process (Prefect's temporary server) behind, and
  no temporary Prefect home.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kgenrich.testing import TEST_KEY, ScriptedServer, http_error, slow

DATA = Path(__file__).resolve().parents[1] / "data"


def _run_args(server: ScriptedServer, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "kgenrich.cli", "run", "--catalog", str(DATA / "catalog.csv"),
         "--seed", str(DATA / "seed.tsv"), "--text-col", "description",
         "--attr", "director=directed_by", "--attr", "genres=has_genre",
         "--attr", "country=country_of_origin", "--out", str(out),
         "--backend", "openai", "--base-url", server.base_url, "--model", "scripted-model",
         "--set", "verify.epochs=5", "--set", "verify.dim=16", "--set", "llm.backoff_s=0.01",
         "--set", f"reports_dir={out.parent / 'reports'}",
         "--set", f"llm.cache_dir={out.parent / 'cache'}", *extra]


def _env() -> dict[str, str]:
    # no PREFECT_API_URL: the run starts Prefect's temporary server, as a new user's would
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["KGENRICH_LLM__API_KEY"] = TEST_KEY
    return env


def _kgenrich_run(
    server: ScriptedServer, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_run_args(server, out, *extra), capture_output=True, text=True,
                          env=_env(), timeout=600, cwd=out.parent)


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


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_sigkill_of_a_run_leaves_no_prefect_server_behind(tmp_path: Path) -> None:
    with ScriptedServer() as server:
        server.queue(*[slow(5.0)] * 200)  # keeps the run in its LLM stage
        run = subprocess.Popen(_run_args(server, tmp_path / "out"), env=_env(),
                               cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            uvicorn: list[int] = []

            def server_started() -> bool:
                uvicorn[:] = [c for c in _children(run.pid) if "uvicorn" in _cmdline(c)]
                return bool(uvicorn) and server.chat_count > 0

            _wait_for(server_started, 300, "Prefect's temporary server and a first LLM call")
            home = next(arg for arg in _cmdline(next(
                c for c in _children(run.pid) if "cli_reaper" in _cmdline(c))).split()
                if "kgenrich-prefect-" in arg)
            assert Path(home).is_dir()
            os.kill(run.pid, signal.SIGKILL)
            run.wait()
            _wait_for(lambda: not _running(uvicorn[0]), 30, f"uvicorn {uvicorn[0]} to stop")
            _wait_for(lambda: not Path(home).exists(), 30, f"{home} to be removed")
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
