"""The merge log of entity resolution: one record per link of a non-identical label to an
entity (or per pair kept apart), its review rows, and the merges a person rejected there."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from kgenrich.kg.review import ReviewRow

#: The review file's relation for a merge row: "head is the same entity as tail". No ontology
#: relation can be named so (a prefixed name), so a merge row never meets a triple's verdict.
SAME_AS = "owl:sameAs"
#: The review file's `source` of merge rows.
MERGE_SOURCE = "resolve"

MergeKind = Literal["label", "entity"]
MergeOutcome = Literal["merged", "kept_apart"]


class MergeRecord(BaseModel):
    """One resolution decision. `merged_id` is the id the label (kind "label": a mention or a
    value) or the entity (kind "entity": a seed entity) had or would have had alone; `into` the
    entity it now names. `kept_apart` pairs say why they were not merged in `detail`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: MergeKind
    outcome: MergeOutcome
    type: str
    label: str
    merged_id: str
    into: str
    into_label: str
    reason: str  # exact | normalised | name_parts | fuzzy | embedding | llm | facts disagree ...
    score: float
    source: str = ""  # the SourceKind of the label or entity merged
    detail: str = ""

    @property
    def pair(self) -> tuple[str, str]:
        return (self.merged_id, self.into)


def merge_review_rows(
    log: Iterable[MergeRecord], *, previous: Mapping[tuple[str, str, str], ReviewRow]
) -> list[ReviewRow]:
    """A review row per merge (verdicts already written kept), plus the rejected merges of
    `previous` that this run therefore did not make, so their verdicts stay in the file."""
    rows: dict[tuple[str, str, str], ReviewRow] = {}
    for m in log:
        if m.outcome != "merged":
            continue
        key = (m.merged_id, SAME_AS, m.into)
        old = previous.get(key)
        rows[key] = ReviewRow(
            head=m.merged_id, relation=SAME_AS, tail=m.into, head_label=m.label,
            tail_label=m.into_label, source=MERGE_SOURCE, confidence=m.score,
            reason=f"{m.kind} merged by {m.reason}" + (f" ({m.detail})" if m.detail else ""),
            verdict=old.verdict if old else "", reviewer=old.reviewer if old else "")
    for key, old in previous.items():
        if key[1] == SAME_AS and old.verdict and key not in rows:
            rows[key] = old
    return list(rows.values())


def rejected_merges(rows: Iterable[ReviewRow]) -> frozenset[tuple[str, str]]:
    """(merged id, into) of every merge row a person marked `reject`."""
    return frozenset((r.head, r.tail) for r in rows
                     if r.relation == SAME_AS and r.verdict == "reject")
