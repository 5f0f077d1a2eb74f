"""Scheduled runs: serve the `enrich` flow as a Prefect deployment with a cron schedule.

`serve_enrich` registers the deployment (Prefect's `flow.serve`) and then stays up, executing
each scheduled run in a subprocess. The deployment's parameters are plain JSON that Prefect
stores on its server and shows in its UI, so they never hold a secret: every `SecretStr` field
of the settings (the API key) is left out and each run reads it from `KGENRICH_LLM__API_KEY` in
the environment of the serving process (runs inherit it). `local_prefect_server` starts a
throwaway `prefect server start` for tests and benchmarks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr, ValidationError

from kgenrich.errors import ConfigError
from kgenrich.flows.runners import prefect_api_url
from kgenrich.pipeline.llm.openai_backend import redact_url
from kgenrich.settings import LLMSettings, Settings

if TYPE_CHECKING:  # flows.enrich imports the whole pipeline; serve_enrich imports it late
    from kgenrich.flows.enrich import EnrichInputs

logger = logging.getLogger(__name__)

API_KEY_ENV = "KGENRICH_LLM__API_KEY"
BASE_URL_ENV = "KGENRICH_LLM__BASE_URL"
PUSH_ENDPOINT_ENV = "KGENRICH_PUSH__ENDPOINT"
_INPUT_PATHS = ("catalog", "ontology", "out_dir", "seed", "seed_link", "interactions", "review")


# --------------------------------------------------------------------------- parameters (pure)


def _secret_paths(model: BaseModel, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Dotted paths of every SecretStr field in a (nested) settings model."""
    out: list[tuple[str, ...]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            out.append((*prefix, name))
        elif isinstance(value, BaseModel):
            out.extend(_secret_paths(value, (*prefix, name)))
    return out


def _exclude(paths: list[tuple[str, ...]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = True
    return tree


def _absolute(path: Any) -> Any:
    return str(Path(path).expanduser().resolve()) if path is not None else None


def deployment_parameters(inputs: EnrichInputs, settings: Settings) -> dict[str, Any]:
    """The JSON parameters stored with the deployment: absolute paths and no secret.

    Left out (each run reads them from its environment instead): every `SecretStr` setting
    (`llm.api_key` -> `KGENRICH_LLM__API_KEY`, `push.endpoint` -> `KGENRICH_PUSH__ENDPOINT`)
    and an `llm.base_url` that carries credentials (`KGENRICH_LLM__BASE_URL`).

    Raises:
        ConfigError: a secret value would still end up in the parameters.
    """
    secrets = _secret_paths(settings)
    base_url = settings.llm.base_url
    if base_url and redact_url(base_url) != base_url:
        secrets.append(("llm", "base_url"))
    data = settings.model_dump(mode="json", exclude=_exclude(secrets))
    data["reports_dir"] = _absolute(settings.reports_dir)
    for key in ("cache_dir", "model_dir"):
        if data["llm"].get(key) is not None:
            data["llm"][key] = _absolute(data["llm"][key])
    raw_inputs = inputs.model_dump(mode="json")
    for key in _INPUT_PATHS:
        if raw_inputs.get(key) is not None:
            raw_inputs[key] = _absolute(raw_inputs[key])
    params = {"inputs": raw_inputs, "settings": data}
    blob = json.dumps(params)
    for path in secrets:
        value: Any = settings
        for part in path:
            value = getattr(value, part)
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if len(text) >= 4 and text in blob:
            raise ConfigError(f"setting {'.'.join(path)} would be stored in the deployment")
    return params


def check_schedule(cron: str, timezone: str | None = None) -> None:
    """Raise ConfigError unless `cron` (five fields) and `timezone` (IANA) are valid."""
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=cron, timezone=timezone)
    except (ValidationError, ValueError) as err:
        raise ConfigError(f"invalid schedule {cron!r} (timezone {timezone}): {err}") from err


# --------------------------------------------------------------------------- serving


def serve_enrich(
    inputs: EnrichInputs,
    settings: Settings,
    *,
    cron: str,
    name: str,
    timezone: str | None = None,
    pause_on_shutdown: bool = False,
    limit: int = 1,
) -> None:
    """Register `enrich/<name>` with a cron schedule and execute its runs until interrupted.

    Needs a running Prefect server (`PREFECT_API_URL`): the schedule lives there, and its
    scheduler creates the runs. `limit` caps concurrent runs of this process (1: a run that
    overruns its slot delays the next instead of overlapping it). With `pause_on_shutdown`
    the schedule is paused when this process stops; the default keeps it active so a
    restarted `kgenrich serve` picks up where it left off.

    Raises:
        ConfigError: no Prefect server configured, a bad cron/timezone, or a secret that
            would end up in the stored parameters.
    """
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from kgenrich.flows.enrich import enrich

    api = prefect_api_url()
    if api is None:
        raise ConfigError(
            "kgenrich serve needs a running Prefect server: start one with "
            "`prefect server start` and set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)"
        )
    check_schedule(cron, timezone)
    params = deployment_parameters(inputs, settings)
    # A key that came from --config (not the environment) must still reach the runs, which
    # are subprocesses of this one and inherit its environment, never the server's records.
    key = settings.llm.api_key.get_secret_value()
    if key != LLMSettings.model_fields["api_key"].get_default().get_secret_value():
        os.environ[API_KEY_ENV] = key
    if settings.llm.base_url and "base_url" not in params["settings"]["llm"]:
        os.environ[BASE_URL_ENV] = settings.llm.base_url
    if settings.push.endpoint is not None:  # a SecretStr: left out of the parameters too
        os.environ[PUSH_ENDPOINT_ENV] = settings.push.endpoint.get_secret_value()
    logger.info("serving enrich/%s on %r (%s) against %s", name, cron, timezone or "UTC",
                redact_url(api))
    enrich.serve(
        name=name,
        schedules=[Cron(cron, timezone=timezone)],
        parameters=params,
        pause_on_shutdown=pause_on_shutdown,
        limit=limit,
        print_starting_message=False,
        # import by module path: independent of the working directory
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def serve_command(
    inputs: EnrichInputs,
    settings: Settings,
    *,
    cron: str,
    name: str,
    timezone: str | None = None,
    pause_on_shutdown: bool = False,
    limit: int = 1,
) -> int:
    """Body of `kgenrich serve`: serve until Ctrl-C / SIGTERM, then return exit code 0.

    Raises:
        KgenrichError: as `serve_enrich` (the CLI turns it into a message and exit code 2).
    """
    try:
        serve_enrich(inputs, settings, cron=cron, name=name, timezone=timezone,
                     pause_on_shutdown=pause_on_shutdown, limit=limit)
    except KeyboardInterrupt:
        logger.info("stopped serving enrich/%s", name)
    return 0


# --------------------------------------------------------------------------- local server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def local_prefect_server(
    home: Path,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    startup_timeout_s: float = 120.0,
) -> Iterator[str]:
    """Run `prefect server start` on 127.0.0.1 with its own PREFECT_HOME (database) and yield
    its API URL. The server and its children (a process group) are stopped on exit."""
    port = port or free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    home.mkdir(parents=True, exist_ok=True)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    child_env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        **(env or {}),
    })
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)],
        env=child_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not _healthy(api_url):
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with {proc.returncode}; see "
                                   f"{home / 'server.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not healthy after {startup_timeout_s:.0f}s")
            time.sleep(0.5)
        yield api_url
    finally:
        stop_process_group(proc)
        log.close()


def stop_process_group(proc: subprocess.Popen[Any], *, timeout_s: float = 20.0) -> None:
    """SIGTERM the group `proc` leads (started with start_new_session), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout_s)
            break
        except subprocess.TimeoutExpired:
            continue
    # children that outlived the leader share its group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
