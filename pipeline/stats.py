"""Accounting helpers: turn a batch of LLM answers into a stage's StageStats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kgenrich.kg.records import StageStats
from kgenrich.pipeline.llm.base import LLMAnswer


def stats_from_answers(answers: Sequence[LLMAnswer[Any]], *, seconds: float) -> StageStats:
    return StageStats(
        # Requests refused by the budget never reached the model: not calls.
        llm_calls=sum(1 for a in answers if not a.cached and a.error != "budget exhausted"),
        cache_hits=sum(1 for a in answers if a.cached),
        prompt_tokens=sum(a.prompt_tokens for a in answers if not a.cached),
        completion_tokens=sum(a.completion_tokens for a in answers if not a.cached),
        seconds=seconds,
    )
