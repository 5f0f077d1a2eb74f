"""One row of the human review queue: a candidate triple, what verification said about it, and
the verdict (`accept` / `reject`) a person writes next to it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Verdict = Literal["", "accept", "reject"]


class ReviewRow(BaseModel):
    """One line of the review file. A person fills `verdict` (and optionally `reviewer`)."""

    model_config = ConfigDict(extra="ignore")

    head: str
    relation: str
    tail: str
    head_label: str = ""
    tail_label: str = ""
    source: str = ""
    confidence: float | None = None
    reason: str = ""
    evidence: str | None = None
    verdict: Verdict = ""
    reviewer: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.head, self.relation, self.tail)
