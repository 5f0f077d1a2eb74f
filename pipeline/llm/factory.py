"""`make_llm(settings)`: the one place a backend is chosen, from one small dict."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from kgenrich.errors import ConfigError
from kgenrich.pipeline.llm.base import LLM
from kgenrich.pipeline.llm.embedded import EmbeddedServer, ServerOptions, ensure_model
from kgenrich.pipeline.llm.fake import FakeLLM, schema_default_responder
from kgenrich.pipeline.llm.openai_backend import OpenAICompatibleLLM, ResponseFormatMode
from kgenrich.settings import LLMSettings

BackendFactory = Callable[[LLMSettings], AbstractContextManager[LLM]]


def _openai_llm(
    settings: LLMSettings, *, base_url: str, response_format: ResponseFormatMode
) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(
        base_url=base_url,
        api_key=settings.api_key,
        model=settings.model,
        timeout_s=settings.timeout_s,
        max_retries=settings.max_retries,
        backoff_s=settings.backoff_s,
        concurrency=settings.concurrency,
        cache_dir=settings.cache_dir,
        max_calls=settings.max_calls,
        max_tokens_total=settings.max_tokens_total,
        response_format=response_format,
        breaker_threshold=settings.breaker_threshold,
        breaker_cooldown_s=settings.breaker_cooldown_s,
        breaker_window=max(settings.breaker_window, settings.breaker_threshold),
        breaker_failure_rate=settings.breaker_failure_rate,
    )


@contextmanager
def _openai(settings: LLMSettings) -> Iterator[LLM]:
    if not settings.base_url:
        raise ConfigError(
            "llm.backend 'openai' needs llm.base_url (env KGENRICH_LLM__BASE_URL), "
            "e.g. http://127.0.0.1:8000/v1"
        )
    with _openai_llm(settings, base_url=settings.base_url, response_format="json_schema") as llm:
        yield llm


def _embedded_client_settings(settings: LLMSettings) -> LLMSettings:
    # llama.cpp's server answers one request at a time: more in flight only queue up and run
    # into their timeouts. Queued CPU generation is slow, so allow generous timeouts.
    return settings.model_copy(update={"concurrency": 1,
                                       "timeout_s": max(settings.timeout_s, 600.0)})


@contextmanager
def embedded_server(settings: LLMSettings) -> Iterator[str]:
    """Start the embedded llama.cpp server on 127.0.0.1 and yield its OpenAI base URL; it is
    stopped on exit."""
    options = ServerOptions(
        n_ctx=settings.embedded_ctx,
        n_threads=settings.embedded_threads,
        extra_bufts=settings.embedded_extra_bufts,
        model_alias=settings.model,
    )
    with EmbeddedServer(ensure_model(settings.model_dir), options=options,
                        port=settings.embedded_port) as base_url:
        yield base_url


def _embedded_client(settings: LLMSettings, base_url: str) -> OpenAICompatibleLLM:
    # llama-cpp-python's server takes the schema as {"type": "json_object", "schema": ...}
    # and turns it into a grammar; it refuses the "json_schema" type.
    return _openai_llm(_embedded_client_settings(settings), base_url=base_url,
                       response_format="json_object_schema")


@contextmanager
def _embedded(settings: LLMSettings) -> Iterator[LLM]:
    with embedded_server(settings) as base_url, _embedded_client(settings, base_url) as llm:
        yield llm


@contextmanager
def _fake(settings: LLMSettings) -> Iterator[LLM]:
    # no disk cache: fake answers must never be served to a real model's run
    yield FakeLLM(
        schema_default_responder,
        model="fake",
        concurrency=settings.concurrency,
        max_calls=settings.max_calls,
        max_tokens_total=settings.max_tokens_total,
    )


BACKENDS: dict[str, BackendFactory] = {
    "embedded": _embedded,
    "openai": _openai,
    "fake": _fake,
}


@contextmanager
def make_llm(settings: LLMSettings, *, embedded_at: str | None = None) -> Iterator[LLM]:
    """The configured backend, ready to use; the embedded server is stopped on exit.

    `embedded_at`: the base URL of an embedded server another process already runs (a task
    runner's workers share the flow process's); the client connects to it instead of starting
    one. Ignored for the other backends, which connect to `settings.base_url`.
    """
    try:
        factory = BACKENDS[settings.backend]
    except KeyError:
        raise ConfigError(
            f"unknown llm.backend {settings.backend!r}; choose one of {sorted(BACKENDS)}"
        ) from None
    if settings.backend == "embedded" and embedded_at is not None:
        with _embedded_client(settings, embedded_at) as client:
            yield client
        return
    with factory(settings) as llm:
        yield llm
