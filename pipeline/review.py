"""The human review queue: triples in the uncertain confidence band go to a JSONL file a person
marks `accept` or `reject`; the next run applies those verdicts (pure functions; I/O in flows)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from kgenrich.kg.records import Decision, Triple
from kgenrich.kg.review import ReviewRow


def review_queue(
    triples: Iterable[Triple],
    *,
    labels: Mapping[str, str],
    previous: Mapping[tuple[str, str, str], ReviewRow] | None = None,
) -> list[ReviewRow]:
    """Rows for every triple in review, keeping verdicts a person already wrote for them.

    A triple that already has a verdict keeps its row even though the verdict took it out of
    review: the file is both the queue and the record of verdicts, and the next run must apply
    them again (and refit the combiner on them)."""
    prev = previous or {}
    rows = []
    for t in triples:
        old = prev.get(t.key)
        if t.provenance.decision is not Decision.REVIEW and not (old and old.verdict):
            continue
        rows.append(ReviewRow(
            head=t.head, relation=t.relation, tail=t.tail,
            head_label=labels.get(t.head, t.head), tail_label=labels.get(t.tail, t.tail),
            source=t.provenance.source.value, confidence=t.provenance.scores.get("confidence"),
            reason=t.provenance.reason, evidence=t.provenance.evidence,
            verdict=old.verdict if old else "", reviewer=old.reviewer if old else "",
        ))
    return rows


def apply_review(
    triples: Sequence[Triple], *, rows: Iterable[ReviewRow]
) -> tuple[list[Triple], dict[str, int]]:
    """Set the decision of every reviewed triple; a verdict outranks the verifier."""
    verdicts = {r.key: r for r in rows if r.verdict}
    out: list[Triple] = []
    counts = {"accepted by review": 0, "rejected by review": 0}
    for t in triples:
        row = verdicts.get(t.key)
        if row is None or t.provenance.decision is Decision.TRUSTED:
            out.append(t)
            continue
        accept = row.verdict == "accept"
        counts["accepted by review" if accept else "rejected by review"] += 1
        out.append(t.with_provenance(
            decision=Decision.ACCEPTED if accept else Decision.REJECTED,
            reason=f"{row.verdict}ed in review" + (f" by {row.reviewer}" if row.reviewer else ""),
            accepted_by=f"review:{row.reviewer or 'human'}",
        ))
    return out, counts
