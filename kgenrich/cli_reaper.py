"""A watchdog process that stops a child when its parent dies: `python -m kgenrich.cli_reaper
PARENT CHILD [DIR]` waits for either to exit; if the parent goes first (even by SIGKILL, which
runs no exit handler) it stops the child (SIGTERM, then SIGKILL after a grace period) and
removes DIR. Standard library plus `kgenrich.runs.lock` (itself standard library only), so it
starts in a few tens of milliseconds."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import time

from kgenrich.runs.lock import pid_alive

GRACE_S = 5.0
_POLL_S = 0.5  # only without pidfds (not Linux): how often to look at the processes


def _pidfd(pid: int) -> int | None:
    """A pidfd for `pid`, None when it is gone or the platform has none."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except ProcessLookupError:
        return None
    except OSError:  # kernel older than 5.3
        return None


def _wait_first(parent: int, child: int) -> str:
    """"parent" or "child": which exited first (blocking until one does)."""
    pfd, cfd = _pidfd(parent), _pidfd(child)
    if pfd is None and not pid_alive(parent):
        return "parent"
    if cfd is None and not pid_alive(child):
        return "child"
    if pfd is not None and cfd is not None:
        poller = select.poll()
        poller.register(pfd, select.POLLIN)
        poller.register(cfd, select.POLLIN)
        ready = {fd for fd, _ in poller.poll()}
        return "child" if cfd in ready else "parent"
    while True:  # no pidfds: look every _POLL_S
        if not pid_alive(child):
            return "child"
        if not pid_alive(parent):
            return "parent"
        time.sleep(_POLL_S)


def _stop(pid: int, grace_s: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def watch(parent: int, child: int, cleanup: str | None = None, grace_s: float = GRACE_S) -> str:
    """Block until `parent` or `child` exits; if the parent went first, stop the child and
    remove `cleanup`. Returns which exited first."""
    first = _wait_first(parent, child)
    if first == "parent":
        _stop(child, grace_s)
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)
    return first


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: python -m kgenrich.cli_reaper PARENT CHILD [DIR]\n")
        return 2
    # The terminal's Ctrl-C is for the run; the reaper must outlive it to clean up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(int(argv[0]), int(argv[1]), argv[2] if len(argv) == 3 else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
