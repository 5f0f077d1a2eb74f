"""The scorer registry and verification with review verdicts (fake scorer, no model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

import numpy as np
import pytest

from kgenrich.errors import ConfigError
from kgenrich.kg.records import Decision, Ontology, Provenance, Relation, SourceKind, Triple
from kgenrich.kg.review import ReviewRow
from kgenrich.pipeline.verify import ReviewedVerification, verify_with_review
from kgenrich.settings import VerifySettings
from kgenrich.verification.combiner import Combiner
from kgenrich.verification.scorers import SCORERS, FunctionScorer, fit_scorer

ONT = Ontology(
    item_type="Movie",
    types=("Movie", "Person"),
    closed_types=(),
    relations=(Relation(name="directed_by", domain="Movie", range="Person"),),
)
N = 40


def test_unknown_scorer_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="magic") as info:
        fit_scorer("magic", [], settings=VerifySettings(), labels={})
    assert all(name in str(info.value) for name in ("calibrated", "stacked", "text"))


def test_every_configurable_kge_scorer_is_registered() -> None:
    annotation = VerifySettings.model_fields["kge_scorer"].annotation
    assert set(get_args(annotation)) <= set(SCORERS)


def _candidates() -> list[Triple]:
    return [Triple(head=f"item/{i}", relation="directed_by", tail=f"person/{i}",
                   provenance=Provenance(source=SourceKind.COMPLETED, item_id=str(i),
                                         scores={"agreement": 1.0, "samples": 1}))
            for i in range(N)]


def _truth(i: int) -> bool:
    return i % 3 == 0


class _Counting:
    """A fake KGE scorer: high P(true) for the true candidates, counting how often it scores."""

    def __init__(self) -> None:
        self.calls = 0
        rng = np.random.default_rng(0)
        self.p = {f"item/{i}": float(np.clip(rng.normal(0.8 if _truth(i) else 0.35, 0.1),
                                             0.01, 0.99)) for i in range(N)}

    def probability(self, keys: Sequence[tuple[str, str, str]]) -> np.ndarray:
        self.calls += 1
        return np.array([self.p[h] for h, _, _ in keys])


def _run(rows: Sequence[ReviewRow], fake: _Counting) -> ReviewedVerification:
    scorer = FunctionScorer(name="fake", knows_fn=lambda h, r, t: True,
                            probability_fn=fake.probability)
    types = {f"item/{i}": "Movie" for i in range(N)} | {f"person/{i}": "Person" for i in range(N)}
    return verify_with_review(
        _candidates(), ontology=ONT, entity_types=types, scorer=scorer,
        combiner=Combiner.rule((0.4, 0.6)), context=None, reviewed=rows, refit_min_labels=30,
        target_precision=0.9)


def _verdicts(n: int) -> list[ReviewRow]:
    return [ReviewRow(head=f"item/{i}", relation="directed_by", tail=f"person/{i}",
                      verdict="accept" if _truth(i) else "reject") for i in range(n)]


def test_without_verdicts_verification_runs_once_with_the_configured_combiner() -> None:
    fake = _Counting()
    out = _run([], fake)
    assert fake.calls == 1 and out.combiner.name == "rule"
    assert out.combiner_note == "rule, accept at 0.600"
    assert out.review_counts == {"accepted by review": 0, "rejected by review": 0}
    assert out.triples == out.stage.kept


def test_few_verdicts_are_applied_but_do_not_refit() -> None:
    fake = _Counting()
    out = _run(_verdicts(6), fake)
    assert fake.calls == 1 and out.combiner.name == "rule" and "needs 30" in out.combiner_note
    assert out.review_counts == {"accepted by review": 2, "rejected by review": 4}
    decided = {t.head: t.provenance.decision for t in out.triples}
    assert decided["item/0"] is Decision.ACCEPTED and decided["item/1"] is Decision.REJECTED


def test_enough_verdicts_refit_the_combiner_and_verify_again() -> None:
    fake = _Counting()
    out = _run(_verdicts(N), fake)
    assert fake.calls == 2 and out.combiner.name == "learned:review"
    assert out.combiner_note.startswith(f"refit on {N} reviewed verdicts")
    assert all("(learned:review)" in t.provenance.reason for t in out.stage.kept)
    assert sum(out.review_counts.values()) == N
