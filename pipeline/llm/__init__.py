"""LLM backends behind the small `LLM` protocol of `pipeline.llm.base`.

`make_llm(settings)` (in `factory`) picks one; stages only see the protocol.
"""

from __future__ import annotations

from kgenrich.pipeline.llm.base import LLM, LLMAnswer, LLMRequest, Message, UsageTotals
from kgenrich.pipeline.llm.core import (
    BUDGET_EXHAUSTED,
    BackendUsage,
    BaseLLM,
    RawReply,
    parse_answer,
)

__all__ = [
    "BUDGET_EXHAUSTED",
    "LLM",
    "BackendUsage",
    "BaseLLM",
    "LLMAnswer",
    "LLMRequest",
    "Message",
    "RawReply",
    "UsageTotals",
    "parse_answer",
]
