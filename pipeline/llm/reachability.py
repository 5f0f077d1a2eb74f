"""Can the configured LLM answer at all? One cheap check before a run's first expensive step,
so a dead endpoint or a rejected key is one line at second 5, not a run whose every call failed.

openai: `GET {base_url}/models` (no tokens spent). Any HTTP answer but 401/403 means the server
is there: some OpenAI-compatible servers have no /models route, and a 5xx may pass by the time
the run asks. embedded: llama-cpp-python is importable and every model part is installed (the
server itself starts with the run; starting it twice would cost seconds for nothing).
"""

from __future__ import annotations

import importlib.util

import httpx

from kgenrich.errors import ConfigError
from kgenrich.kg.redact import redact_url
from kgenrich.pipeline.llm.embedded import find_model_parts
from kgenrich.settings import LLMSettings


def unreachable(settings: LLMSettings, *, timeout_s: float = 5.0) -> str | None:
    """Why the configured LLM cannot answer, in one line naming the setting; None when it can.
    Never contains the API key."""
    if settings.backend == "fake":
        return None
    if settings.backend == "embedded":
        return _embedded_missing()
    if not settings.base_url:
        return "llm.base_url: llm.backend 'openai' needs an endpoint, e.g. http://127.0.0.1:8000/v1"
    where = redact_url(settings.base_url)
    try:
        reply = httpx.get(
            settings.base_url.rstrip("/") + "/models",
            headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
            timeout=min(timeout_s, settings.timeout_s),
        )
    except httpx.HTTPError as err:
        return f"llm.base_url: {where} is not reachable ({type(err).__name__}: {_short(err)})"
    if reply.status_code in (401, 403):
        return (f"llm.api_key: {where} refused the key (HTTP {reply.status_code}); set "
                "KGENRICH_LLM__API_KEY")
    return None


def _embedded_missing() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return ("llm.backend: 'embedded' needs llama-cpp-python, which is not installed; run "
                "bash scripts/setup.sh (it builds the wheel) or use llm.backend=openai")
    try:
        find_model_parts()
    except ConfigError as err:
        return f"llm.backend: {err}"
    return None


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else "no detail"
