"""The reaper (`kgenrich.cli_reaper`) with real processes: when the parent dies first, even by
SIGKILL, the child is stopped and the folder removed; when the child ends first, nothing else
happens. And `reap_ephemeral_server` wraps Prefect's temporary-server start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest

from kgenrich import cli_prefect
from kgenrich.cli_reaper import watch


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


def test_parent_killed_first_stops_the_child_and_cleans_up(tmp_path: Path) -> None:
    parent, child = _sleeper(), _sleeper()
    (tmp_path / "home").mkdir()
    result: list[str] = []
    watcher = threading.Thread(target=lambda: result.append(
        watch(parent.pid, child.pid, str(tmp_path / "home"), grace_s=5)))
    watcher.start()
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    watcher.join(timeout=60)
    assert result == ["parent"]
    assert child.wait(timeout=10) == -signal.SIGTERM  # stopped politely first
    assert not (tmp_path / "home").exists()


def test_child_ending_first_leaves_everything(tmp_path: Path) -> None:
    parent, child = _sleeper(), _sleeper()
    (tmp_path / "home").mkdir()
    try:
        watcher = threading.Thread(target=lambda: watch(parent.pid, child.pid,
                                                        str(tmp_path / "home")))
        watcher.start()
        child.terminate()
        child.wait()
        watcher.join(timeout=60)
        assert not watcher.is_alive()
        assert parent.poll() is None and (tmp_path / "home").exists()
    finally:
        parent.kill()
        parent.wait()


def test_reaper_process_stops_the_child_of_a_killed_parent(tmp_path: Path) -> None:
    """The same through `start_reaper`, as a run uses it: the reaper is a separate process."""
    child = _sleeper()
    code = ("import sys, time; from kgenrich.cli_prefect import start_reaper\n"
            "start_reaper(int(sys.argv[1])); print('ok', flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code, str(child.pid)],
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None and parent.stdout.readline().strip() == "ok"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    assert child.wait(timeout=30) == -signal.SIGTERM


def test_prefect_server_start_is_wrapped(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    started: list[tuple[int, Path | None]] = []

    class SubprocessASGIServer:
        def _run_uvicorn_command(self) -> types.SimpleNamespace:
            return types.SimpleNamespace(pid=4242)

    module = types.ModuleType(cli_prefect.SERVER_MODULE)
    module.SubprocessASGIServer = SubprocessASGIServer  # type: ignore[attr-defined]
    monkeypatch.setattr(cli_prefect, "start_reaper",
                        lambda child, cleanup=None: started.append((child, cleanup)))
    assert cli_prefect._guard_server_class(module, tmp_path)
    assert cli_prefect._guard_server_class(module, tmp_path)  # twice: wrapped once
    assert SubprocessASGIServer()._run_uvicorn_command().pid == 4242
    assert started == [(4242, tmp_path)]


def test_a_prefect_without_the_method_is_left_alone(tmp_path: Path) -> None:
    module = types.ModuleType(cli_prefect.SERVER_MODULE)
    assert not cli_prefect._guard_server_class(module, tmp_path)
