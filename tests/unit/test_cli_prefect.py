"""The CLI's Prefect environment: without a configured server each process gets its own Prefect
home and a startup timeout a busy machine meets; with one, nothing changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgenrich.cli_prefect import (
    EPHEMERAL_STARTUP_TIMEOUT_S,
    configured_api_url,
    isolate_ephemeral_prefect,
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
