"""The small protocol every LLM backend implements, and the records it exchanges.

Stages build messages (pure), call `LLM.complete_many`, and parse `LLMAnswer.value` (already
validated against the requested pydantic schema). An answer that failed carries `error` instead
of raising, so one bad item never sinks a batch and every failure reaches the run report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypedDict, TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


class Message(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class LLMRequest(Generic[T]):
    """One structured-output request. `seed` distinguishes the k samples of one question."""

    messages: tuple[Message, ...]
    schema: type[T]
    temperature: float = 0.0
    seed: int | None = None
    max_tokens: int = 256
    stage: str = ""  # for per-stage token accounting
    item_id: str | None = None
    # ask for the n most likely tokens at each answer position (OpenAI `top_logprobs`); 0: none
    top_logprobs: int = 0


@dataclass(frozen=True)
class TokenLogprob:
    """One answer token with its log-probability and the most likely alternatives there."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class LLMAnswer(Generic[T]):
    """The validated answer, or the error that prevented one (never both None)."""

    value: T | None
    raw: str = ""
    error: str | None = None
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    repaired: bool = False
    calls: int = 0  # requests sent to the endpoint for it: retries, fallbacks, the repair
    # per answer token, when the request asked for them and the server returned them
    logprobs: tuple[TokenLogprob, ...] = ()

    @property
    def ok(self) -> bool:
        return self.value is not None


@dataclass
class UsageTotals:
    """Running per-stage accounting kept by a backend."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: int = 0
    answered: int = 0  # requests the endpoint answered (valid or not): 0 = nothing came back
    by_stage: dict[str, dict[str, int]] = field(default_factory=dict)


class LLM(Protocol):
    """What a stage needs from a language model."""

    @property
    def model_id(self) -> str: ...

    def complete(self, request: LLMRequest[T]) -> LLMAnswer[T]: ...

    def complete_many(self, requests: Sequence[LLMRequest[T]]) -> list[LLMAnswer[T]]:
        """Answers in request order; runs up to the backend's concurrency at once."""
        ...

    def usage(self) -> UsageTotals: ...
