"""Integration fixtures: a scripted OpenAI-compatible server on 127.0.0.1 and clients for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from scripted_server import TEST_KEY, ClientFactory, ScriptedServer

from kgenrich.pipeline.llm.openai_backend import OpenAICompatibleLLM


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        yield running


@pytest.fixture
def make_client(server: ScriptedServer) -> Iterator[ClientFactory]:
    """Build an `OpenAICompatibleLLM` for `server`; fast retries unless overridden."""
    created: list[OpenAICompatibleLLM] = []

    def factory(**overrides: Any) -> OpenAICompatibleLLM:
        args: dict[str, Any] = {
            "base_url": server.base_url,
            "api_key": TEST_KEY,
            "model": "scripted-model",
            "timeout_s": 5.0,
            "max_retries": 2,
            "backoff_s": 0.01,
            "concurrency": 1,
            "cache_dir": None,
            "max_calls": None,
            "max_tokens_total": None,
            "breaker_threshold": 5,
            "breaker_cooldown_s": 30.0,
            "breaker_window": 20,
            "breaker_failure_rate": 0.9,
        }
        args.update(overrides)
        llm = OpenAICompatibleLLM(**args)
        created.append(llm)
        return llm

    yield factory
    for llm in created:
        llm.close()
