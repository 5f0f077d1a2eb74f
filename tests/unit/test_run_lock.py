"""One run per output folder (`kgenrich.runs.lock`): a second holder fails at once naming the
first, a lock left by a killed run is taken over with a warning, and the lock goes on every exit
path. Two real processes hold and contend for it."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kgenrich.errors import OutputLocked, PathError
from kgenrich.runs.lock import LOCK_NAME, output_lock, read_holder

HOLD = """
import sys, time
from pathlib import Path
from kgenrich.runs.lock import output_lock
with output_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path: Path) -> subprocess.Popen[str]:
    """Another process holding `tmp_path / "out"`'s lock."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "out")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_second_run_fails_naming_the_holder(tmp_path: Path,
                                            holder: subprocess.Popen[str]) -> None:
    with pytest.raises(OutputLocked) as err, output_lock(tmp_path / "out"):
        pytest.fail("a second holder must not get the lock")
    message = str(err.value)
    assert f"pid {holder.pid} on {socket.gethostname()}" in message
    assert str(tmp_path / "out") in message and "\n" not in message


def test_lock_of_a_killed_run_is_taken_over_with_a_warning(
    tmp_path: Path, holder: subprocess.Popen[str], caplog: pytest.LogCaptureFixture
) -> None:
    os.kill(holder.pid, signal.SIGKILL)  # no cleanup runs: the file stays behind
    holder.wait()
    lock_file = tmp_path / "out" / LOCK_NAME
    stale = read_holder(lock_file)
    assert stale is not None and stale.pid == holder.pid
    with caplog.at_level(logging.WARNING, logger="kgenrich.runs.lock"), \
            output_lock(tmp_path / "out") as path:
        mine = read_holder(path)
        assert mine is not None and mine.pid == os.getpid()
    assert "stale run lock" in caplog.text and f"pid {holder.pid}" in caplog.text
    assert not lock_file.exists()


def test_lock_is_released_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), output_lock(tmp_path / "out"):
        raise RuntimeError("boom")
    assert not (tmp_path / "out" / LOCK_NAME).exists()
    # and another process can take it at once
    probe = ("import sys; from pathlib import Path; from kgenrich.runs.lock import output_lock\n"
             "with output_lock(Path(sys.argv[1])): print('ok')")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "out")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    with output_lock(tmp_path / "out") as outer:
        with output_lock(tmp_path / "out") as inner:
            assert inner == outer
        assert outer.exists()  # the inner release keeps the outer hold
        holder = json.loads(outer.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert not outer.exists()


def test_out_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(PathError, match="output folder is a file") as err, \
            output_lock(tmp_path / "out"):
        pass
    assert err.value.path == str(tmp_path / "out")


def test_out_dir_under_a_read_only_parent_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)  # root ignores chmod: simulate the mount
    with pytest.raises(PathError, match="read-only file system") as err, \
            output_lock(tmp_path / "ro" / "out"):
        pass
    assert str(tmp_path / "ro" / "out") in str(err.value)
