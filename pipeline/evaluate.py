"""Score completed triples against an answer key (hidden facts): precision and recall."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel

from kgenrich.kg.ids import normalize_label
from kgenrich.kg.records import Decision, SourceKind, Triple


class PR(BaseModel):
    proposed: int
    correct: int
    key_size: int
    precision: float
    recall: float


def precision_recall(
    triples: Iterable[Triple],
    *,
    key: Sequence[tuple[str, str, str]],
    labels: Mapping[str, str],
    head_of_item: Mapping[str, str],
    decisions: frozenset[Decision] | None = None,
    sources: frozenset[SourceKind] = frozenset({SourceKind.COMPLETED, SourceKind.EXTRACTED}),
) -> PR:
    """Key rows are (item id, relation, tail label); triples are matched by normalized labels.

    Only (item, relation) pairs that appear in the key are scored, so facts the key cannot judge
    (e.g. a relation the demo did not hide) neither help nor hurt.
    """
    gold = {(head_of_item[i], r, normalize_label(t)) for i, r, t in key if i in head_of_item}
    judged = {(h, r) for h, r, _ in gold}
    proposed = {
        (t.head, t.relation, normalize_label(labels.get(t.tail, t.tail)))
        for t in triples
        if t.provenance.source in sources
        and (decisions is None or t.provenance.decision in decisions)
        and (t.head, t.relation) in judged
    }
    correct = len(proposed & gold)
    return PR(
        proposed=len(proposed), correct=correct, key_size=len(gold),
        precision=correct / len(proposed) if proposed else 0.0,
        recall=correct / len(gold) if gold else 0.0,
    )
