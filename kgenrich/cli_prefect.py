"""Prefect's environment for one CLI process, set before Prefect is first imported: without a
Prefect server configured, the run gets its own Prefect home (database), a startup timeout that
a busy machine meets, and a reaper that stops Prefect's temporary server when the run dies.
Imports no Prefect."""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import types
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Seconds Prefect waits for its temporary API server (Prefect's own default: 20 s, which a busy
#: 2-core machine missed). An explicit PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS wins.
EPHEMERAL_STARTUP_TIMEOUT_S = 120
_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def _profiles_path(environ: MutableMapping[str, str]) -> Path:
    if environ.get("PREFECT_PROFILES_PATH"):
        return Path(environ["PREFECT_PROFILES_PATH"]).expanduser()
    home = Path(environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    return home / "profiles.toml"


def configured_api_url(environ: MutableMapping[str, str]) -> str | None:
    """PREFECT_API_URL from the environment or, failing that, the active Prefect profile."""
    if environ.get("PREFECT_API_URL"):
        return environ["PREFECT_API_URL"]
    try:
        profiles = tomllib.loads(_profiles_path(environ).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None  # no readable profiles: Prefect falls back to its ephemeral API too
    active = environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    url = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(url) if url else None


def isolate_ephemeral_prefect(environ: MutableMapping[str, str] = os.environ) -> Path | None:
    """Give this process its own PREFECT_HOME unless a Prefect server is configured.

    Without a server, Prefect starts a temporary API server on a SQLite database under
    PREFECT_HOME; two runs sharing one home share that database, and one of them failed to
    start. The fresh home is a temporary directory, removed at exit (after Prefect's own exit
    handler has stopped its server, since that handler is registered later), or by the reaper
    (`reap_ephemeral_server`) when the process dies without running exit handlers. The user's
    profiles file is still read. Must run before Prefect is imported: Prefect reads its
    settings once, on import.

    Returns:
        The new Prefect home, or None when PREFECT_API_URL is configured (environment or
        active profile): then runs report to that server and nothing changes.
    """
    environ.setdefault(_TIMEOUT_ENV, str(EPHEMERAL_STARTUP_TIMEOUT_S))
    if configured_api_url(environ) is not None:
        return None
    profiles = _profiles_path(environ)
    if profiles.is_file():
        environ["PREFECT_PROFILES_PATH"] = str(profiles)
    home = Path(tempfile.mkdtemp(prefix="kgenrich-prefect-"))
    environ["PREFECT_HOME"] = str(home)
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    if environ is os.environ:  # this process's Prefect (another mapping is for a child's)
        reap_ephemeral_server(cleanup=home)
    return home


# --------------------------------------------------------------------------- the reaper

#: The module and method that start Prefect's temporary API server (a uvicorn subprocess,
#: Prefect 3: `SubprocessASGIServer._run_uvicorn_command`); stopped only by an exit handler.
SERVER_MODULE = "prefect.server.api.server"
_SERVER_CLASS, _START_METHOD = "SubprocessASGIServer", "_run_uvicorn_command"


def start_reaper(child: int, *, cleanup: Path | None = None) -> subprocess.Popen[bytes]:
    """Start `kgenrich.cli_reaper` for `child`: when this process dies, even by SIGKILL, the
    reaper stops `child` and removes `cleanup`. Its own session, so a Ctrl-C meant for the run
    does not reach it."""
    args = [sys.executable, "-m", "kgenrich.cli_reaper", str(os.getpid()), str(child)]
    if cleanup is not None:
        args.append(str(cleanup))
    reaper = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              start_new_session=True)
    _reapers.append(reaper)  # kept, so it is waited for (not warned about) when it ends
    return reaper


_reapers: list[subprocess.Popen[bytes]] = []


def _guard_server_class(module: types.ModuleType, cleanup: Path | None) -> bool:
    """Wrap the temporary server's start so each uvicorn process it starts gets a reaper."""
    cls = getattr(module, _SERVER_CLASS, None)
    start: Callable[..., Any] | None = getattr(cls, _START_METHOD, None)
    if cls is None or start is None:
        logger.debug("Prefect has no %s.%s; its temporary server gets no reaper",
                     _SERVER_CLASS, _START_METHOD)
        return False
    if getattr(start, "_kgenrich_reaped", False):
        return True

    def run_uvicorn_command(self: Any) -> Any:
        process = start(self)
        start_reaper(process.pid, cleanup=cleanup)
        return process

    run_uvicorn_command._kgenrich_reaped = True  # type: ignore[attr-defined]
    setattr(cls, _START_METHOD, run_uvicorn_command)
    return True


class _GuardOnImport(importlib.abc.MetaPathFinder):
    """Guards Prefect's server module when, and only if, Prefect imports it: importing it up
    front would cost every command about 3 s."""

    def __init__(self, cleanup: Path | None) -> None:
        self.cleanup = cleanup

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != SERVER_MODULE:
            return None
        sys.meta_path.remove(self)  # once; and so that the real finders find the module
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, cleanup = spec.loader, self.cleanup
        run_module = loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            run_module(module)
            _guard_server_class(module, cleanup)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def reap_ephemeral_server(cleanup: Path | None = None) -> None:
    """Make Prefect's temporary API server die with this process: each uvicorn process it
    starts gets a `kgenrich.cli_reaper` watchdog, which stops it (and removes `cleanup`, the
    temporary Prefect home) when this process dies, even by SIGKILL.

    Prefect stops that server only from an exit handler, which SIGKILL never runs; a kernel
    parent-death signal (PR_SET_PDEATHSIG) would fire when the *thread* that started it exits,
    and Prefect may start it from a worker thread. Works whether or not Prefect is imported.
    """
    module = sys.modules.get(SERVER_MODULE)
    if module is not None:
        _guard_server_class(module, cleanup)
    elif not any(isinstance(f, _GuardOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _GuardOnImport(cleanup))


#: The package's logger tree, sent to the Prefect API (the UI's run logs) besides the terminal.
PACKAGE_LOGGER = "kgenrich"
_EXTRA_LOGGERS_ENV = "PREFECT_LOGGING_EXTRA_LOGGERS"
_MISSING_FLOW_ENV = "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"


def send_package_logs_to_prefect(environ: MutableMapping[str, str] = os.environ) -> None:
    """Add `kgenrich` to PREFECT_LOGGING_EXTRA_LOGGERS, keeping the loggers the user named.

    Prefect reads it once, on import, so this too must run before Prefect is imported. A
    `kgenrich serve` process sets it in its environment, which the flow-run processes it
    starts inherit. Outside a flow run (export, query, push) such records have no run to go
    to: Prefect then drops them silently instead of warning, unless the user chose otherwise.
    """
    named = [n.strip() for n in environ.get(_EXTRA_LOGGERS_ENV, "").split(",") if n.strip()]
    if PACKAGE_LOGGER not in named:
        named.append(PACKAGE_LOGGER)
    environ[_EXTRA_LOGGERS_ENV] = ",".join(named)
    environ.setdefault(_MISSING_FLOW_ENV, "ignore")
