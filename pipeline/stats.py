"""Accounting helpers: turn a batch of LLM answers into a stage's StageStats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kgenrich.kg.records import StageStats
from kgenrich.pipeline.llm.base import LLMAnswer


def stats_from_answers(answers: Sequence[LLMAnswer[Any]], *, seconds: float) -> StageStats:
    return StageStats(
        # Every request sent counts (retries, format fallbacks, the repair); requests refused
        # by the budget or by an open circuit never reached the model (their `calls` is 0).
        llm_calls=sum(a.calls for a in answers if not a.cached),
        cache_hits=sum(1 for a in answers if a.cached),
        prompt_tokens=sum(a.prompt_tokens for a in answers if not a.cached),
        completion_tokens=sum(a.completion_tokens for a in answers if not a.cached),
        seconds=seconds,
    )
