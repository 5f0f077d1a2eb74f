"""Prefect's environment for one CLI process, set before Prefect is first imported: without a
Prefect server configured, the run gets its own Prefect home (database) and a startup timeout
that a busy machine meets. Imports no Prefect."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import tomllib
from collections.abc import MutableMapping
from pathlib import Path

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
    handler has stopped its server, since that handler is registered later). The user's
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
    return home


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
