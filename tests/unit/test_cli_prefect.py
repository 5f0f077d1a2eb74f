"""The CLI's Prefect environment: without a configured server each process gets its own Prefect
home and a startup timeout a busy machine meets; with one, nothing changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kgenrich.cli_prefect import (
    EPHEMERAL_STARTUP_TIMEOUT_S,
    configured_api_url,
    isolate_ephemeral_prefect,
    send_package_logs_to_prefect,
)

TIMEOUT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def test_without_a_server_each_process_gets_its_own_home(tmp_path: Path) -> None:
    user_home = tmp_path / "user-prefect"
    user_home.mkdir()
    (user_home / "profiles.toml").write_text('active = "dev"\n[profiles.dev]\n'
                                             'PREFECT_LOGGING_LEVEL = "DEBUG"\n')
    first: dict[str, str] = {"PREFECT_HOME": str(user_home)}
    second: dict[str, str] = {"PREFECT_HOME": str(user_home)}
    home1, home2 = isolate_ephemeral_prefect(first), isolate_ephemeral_prefect(second)
    assert home1 is not None and home2 is not None and home1 != home2
    assert home1.is_dir() and first["PREFECT_HOME"] == str(home1)
    assert first[TIMEOUT] == str(EPHEMERAL_STARTUP_TIMEOUT_S) == "120"
    # the user's profile settings still apply
    assert first["PREFECT_PROFILES_PATH"] == str(user_home / "profiles.toml")


def test_an_explicit_startup_timeout_wins(tmp_path: Path) -> None:
    env = {"PREFECT_HOME": str(tmp_path), TIMEOUT: "300"}
    isolate_ephemeral_prefect(env)
    assert env[TIMEOUT] == "300"
    assert "PREFECT_PROFILES_PATH" not in env  # no profiles file to keep


def test_a_server_in_the_environment_leaves_prefect_alone(tmp_path: Path) -> None:
    env = {"PREFECT_API_URL": "http://127.0.0.1:4200/api", "PREFECT_HOME": str(tmp_path)}
    assert isolate_ephemeral_prefect(env) is None
    assert env["PREFECT_HOME"] == str(tmp_path)


@pytest.mark.parametrize("selected", ["file", "env"])
def test_a_server_in_the_active_profile_leaves_prefect_alone(tmp_path: Path,
                                                             selected: str) -> None:
    (tmp_path / "profiles.toml").write_text(
        'active = "local"\n[profiles.local]\n[profiles.prod]\n'
        'PREFECT_API_URL = "http://prefect.internal:4200/api"\n')
    env = {"PREFECT_HOME": str(tmp_path)}
    if selected == "file":
        (tmp_path / "profiles.toml").write_text(
            (tmp_path / "profiles.toml").read_text().replace('"local"', '"prod"', 1))
    else:
        env["PREFECT_PROFILE"] = "prod"
    assert configured_api_url(env) == "http://prefect.internal:4200/api"
    assert isolate_ephemeral_prefect(env) is None
    assert env["PREFECT_HOME"] == str(tmp_path)


def test_an_unreadable_profiles_file_means_no_server(tmp_path: Path) -> None:
    (tmp_path / "profiles.toml").write_text("not = [toml")
    assert configured_api_url({"PREFECT_HOME": str(tmp_path)}) is None


@pytest.mark.parametrize(("given", "expected"), [
    (None, "kgenrich"), ("httpx, dask", "httpx,dask,kgenrich"), ("kgenrich,x", "kgenrich,x")])
def test_package_loggers_reach_prefect(given: str | None, expected: str) -> None:
    env = {} if given is None else {"PREFECT_LOGGING_EXTRA_LOGGERS": given}
    send_package_logs_to_prefect(env)
    assert env["PREFECT_LOGGING_EXTRA_LOGGERS"] == expected
    assert env["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] == "ignore"


def test_prefect_logging_config_picks_the_package_loggers_up() -> None:
    # A fresh process: Prefect reads its logging settings once, when its API is first imported.
    code = ("from kgenrich.cli_prefect import send_package_logs_to_prefect as s; s(); "
            "import logging; from prefect import flow; "
            "from prefect.logging.handlers import APILogHandler; "
            "print(any(isinstance(h, APILogHandler) "
            "for h in logging.getLogger('kgenrich').handlers))")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_LOGGING_EXTRA_LOGGERS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300, check=True)
    assert done.stdout.strip().splitlines()[-1] == "True"
