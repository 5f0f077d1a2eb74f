"""One run per output folder: `output_lock(out_dir)` holds an exclusive lock file there (pid,
host, start time) for the run's lifetime; a second holder fails at once with `OutputLocked`.

The lock is an `flock` on `<out>/.kgenrich.lock`, so the kernel releases it when the holder
dies, even by SIGKILL; the file such a run leaves behind is stale and the next run takes it over
with a warning. Re-entrant within one process: the CLI takes it before Prefect loads (so a
second run stops before any LLM call) and the flow takes it again (so served runs are covered).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kgenrich.errors import OutputLocked, PathError

logger = logging.getLogger(__name__)

LOCK_NAME = ".kgenrich.lock"


@dataclass(frozen=True)
class LockHolder:
    """What a lock file says about the run holding it."""

    pid: int
    host: str
    started: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}"


@dataclass
class _Held:
    fd: int
    path: Path
    depth: int


_held: dict[Path, _Held] = {}
_held_lock = threading.Lock()


def read_holder(path: Path) -> LockHolder | None:
    """The holder recorded in a lock file, None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockHolder(pid=int(data["pid"]), host=str(data["host"]),
                          started=str(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _prepare(out_dir: Path) -> None:
    """Create the output folder, or say in one line why it cannot be one."""
    if out_dir.exists() and not out_dir.is_dir():
        raise PathError("the output folder is a file; choose another --out or remove it",
                        path=str(out_dir))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PathError.from_os_error(err, path=str(out_dir),
                                      doing="cannot create the output folder") from err
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise PathError("cannot write the output folder: permission denied or read-only",
                        path=str(out_dir))


def _acquire(out_dir: Path) -> _Held:
    path = out_dir / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise PathError.from_os_error(err, path=str(path),
                                          doing="cannot create the run lock") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_holder(path)
            raise OutputLocked(path=str(out_dir),
                               holder=holder.describe() if holder else "holder unknown") from None
        # A releasing holder unlinks the file after we opened it: then we locked a file nobody
        # else will look at, and must start over on the new one.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = read_holder(path)  # a holder that released it would have removed the file
    if stale is not None:
        gone = stale.host != socket.gethostname() or not pid_alive(stale.pid)
        logger.warning("taking over a stale run lock in %s (left by %s, %s)", out_dir,
                       stale.describe(), "no longer running" if gone else "not holding it")
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode("utf-8"), 0)
    except OSError as err:
        _release(_Held(fd=fd, path=path, depth=1))
        raise PathError.from_os_error(err, path=str(path), doing="cannot write the run lock") \
            from err
    return _Held(fd=fd, path=path, depth=1)


def _release(held: _Held) -> None:
    # Unlink before unlocking, so a waiting run never takes a file that is about to vanish.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(held.path)
    os.close(held.fd)


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[Path]:
    """Hold `out_dir`'s run lock (creating the folder) for the `with` block; yields the lock
    file's path.

    Raises:
        OutputLocked: another live process holds it (the message names pid, host and start).
        PathError: the folder cannot be created or written (a file is in the way, read-only,
            disk full).
    """
    key = Path(os.path.abspath(out_dir))
    with _held_lock:
        held = _held.get(key)
        if held is not None:
            held.depth += 1
        else:
            _prepare(key)
            held = _held[key] = _acquire(key)
    try:
        yield held.path
    finally:
        with _held_lock:
            held.depth -= 1
            if held.depth == 0:
                del _held[key]
                _release(held)
