"""Whether a finished run did its work: `run_health` counts what the LLM stages sent, got back
and failed; `incomplete` turns counts that mean "it did not" into a `RunIncomplete` (exit 3)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kgenrich.errors import RunIncomplete
from kgenrich.pipeline.llm.base import UsageTotals
from kgenrich.runs.bookkeeping import FailureRow
from kgenrich.runs.engine import StageRun

#: `RunReport.extra` key under which the run's health counts are kept.
HEALTH_KEY = "health"
_SUMMARY_CHARS = 240
# An open circuit's message is a consequence; the error that opened it is the cause to show.
_CONSEQUENCES = ("circuit open", "budget exhausted")


@dataclass(frozen=True)
class RunHealth:
    """What a run's LLM stages did, for deciding whether it did its work."""

    requests: int  # sent to the LLM endpoint, retries included
    answered: int  # of those, answered by the model (valid or not)
    items: int  # items some LLM stage had to ask this run (the most over the stages)
    failed_items: int  # items left failed, to retry next run
    error: str | None  # the endpoint's most common error, one line

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def one_line(text: str, limit: int = _SUMMARY_CHARS) -> str:
    """`text` on one line, at most `limit` characters."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def main_error(errors: Sequence[str]) -> str | None:
    """The most common error, preferring causes over consequences (an open circuit)."""
    if not errors:
        return None
    causes = [e for e in errors if not any(c in e for c in _CONSEQUENCES)] or list(errors)
    return one_line(Counter(causes).most_common(1)[0][0])


def run_health(
    *, usage: UsageTotals, runs: Mapping[str, StageRun], failures: Sequence[FailureRow],
    items: int,
) -> RunHealth:
    """The health counts of one run from its LLM usage, its stage runs and its failures."""
    pending = max((items - r.reused for r in runs.values()), default=0)
    return RunHealth(requests=usage.calls, answered=usage.answered,
                     items=pending, failed_items=len({f.item_id for f in failures}),
                     error=main_error([f.error for f in failures]))


def incomplete(health: RunHealth | Mapping[str, Any], *,
               max_failed_item_share: float) -> RunIncomplete | None:
    """The reason the run did not do its work, or None when it did.

    It did not when requests were sent and not one was answered, or when more than
    `max_failed_item_share` of the items to ask failed.
    """
    h = health if isinstance(health, RunHealth) else RunHealth(**health)
    if h.requests > 0 and h.answered == 0:
        return RunIncomplete(f"no LLM answer came back ({h.requests} requests sent, none "
                             "answered)", summary=h.error)
    if h.items > 0 and h.failed_items / h.items > max_failed_item_share:
        return RunIncomplete(
            f"{h.failed_items} of {h.items} items failed, more than the allowed share "
            f"{max_failed_item_share:g} (max_failed_item_share); they are retried next run",
            summary=h.error)
    return None
