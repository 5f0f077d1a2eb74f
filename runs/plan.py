"""Planning rules: which pending items completion asks this run, and each item's status after a
run."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kgenrich.kg.records import Item

UPSTREAM_FAILED = "upstream stage failed"



@dataclass(frozen=True)
class CompletionPlan:
    """Which pending items completion asks this run, which are done without asking (no gaps),
    which fail because an upstream stage failed for them, and which wait for a later run."""

    ask: tuple[Item, ...]
    nothing_to_ask: tuple[str, ...]
    failed: Mapping[str, str]
    deferred: tuple[str, ...]


def plan_completion(
    todo: Sequence[Item], *, gaps: Mapping[str, Sequence[Any]],
    upstream_failed: Mapping[str, str], max_items: int | None,
    only: Collection[str] | None = None,
) -> CompletionPlan:
    """Split completion's pending items. An item whose discovery or extraction failed is not
    asked: its gaps and prompt facts would change once they succeed. Items with gaps beyond
    `max_items`, or outside `only` (`complete.items`), are deferred: not asked, and their stored
    results kept, so a later run with another selection still asks them."""
    failed = {it.id: f"{UPSTREAM_FAILED}: {upstream_failed[it.id]}" for it in todo
              if it.id in upstream_failed}
    ready = [it for it in todo if it.id not in failed]
    with_gaps = [it for it in ready if gaps.get(it.id)]
    chosen = set(only) if only is not None else None
    selected = [it for it in with_gaps if chosen is None or it.id in chosen]
    limit = len(selected) if max_items is None else max_items
    asked = {it.id for it in selected[:limit]}
    return CompletionPlan(
        ask=tuple(selected[:limit]),
        nothing_to_ask=tuple(it.id for it in ready if not gaps.get(it.id)),
        failed=failed,
        deferred=tuple(it.id for it in with_gaps if it.id not in asked),
    )
