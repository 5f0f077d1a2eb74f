"""fit_scorer: the stacked scorer (default) and the calibrated one, on a small catalog graph."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from kgenrich.errors import ConfigError
from kgenrich.kg.records import Provenance, SourceKind, Triple
from kgenrich.settings import VerifySettings
from kgenrich.verification.metrics import expected_calibration_error
from kgenrich.verification.scorers import CalibratedScorer, fit_scorer


def _graph(movies: int = 90) -> list[Triple]:
    # director k only makes films of genre k % 3, so "directed_by d0" predicts "has_genre g0"
    out = []
    for m in range(movies):
        d = m % 6
        for r, t in (("directed_by", f"person/d{d}"), ("has_genre", f"genre/g{d % 3}")):
            out.append(Triple(head=f"item/{m}", relation=r, tail=t,
                              provenance=Provenance(source=SourceKind.SEED, item_id=str(m))))
    return out


def _fit(triples: list[Triple], scorer: str, holdout: float = 0.2):  # type: ignore[no-untyped-def]
    settings = VerifySettings(model="ComplEx", dim=8, epochs=5, seed=0, holdout=holdout)
    return fit_scorer(scorer, [t.key for t in triples], settings=settings, labels={})


def test_stacked_scorer_uses_the_graph_and_reports_out_of_fold_accuracy() -> None:
    graph = _graph()
    # item/0 is directed by d0 and has genre g0 in training; ask about its genre both ways
    keys = [("item/0", "has_genre", "genre/g0"), ("item/0", "has_genre", "genre/g1"),
            ("item/1", "has_genre", "genre/g1"), ("item/1", "has_genre", "genre/g2")]
    verifier = _fit([t for t in graph if t.key not in keys], "stacked")
    assert verifier.stacker is not None and verifier.name.endswith("+stacked")
    assert 0.0 <= verifier.metrics["stacked holdout accuracy (5-fold CV)"] <= 1.0
    p = verifier.probability(keys)
    assert p.shape == (4,) and np.all((p >= 0) & (p <= 1))
    # the director's genre is the right one for both films
    assert p[0] > p[1] and p[2] > p[3]


def test_calibrated_scorer_keeps_the_per_relation_calibrator() -> None:
    verifier = _fit(_graph(), "calibrated")
    assert isinstance(verifier, CalibratedScorer) and verifier.name == "kge:ComplEx"
    keys = [("item/0", "has_genre", "genre/g0")]
    raw = verifier.kge.score(keys)
    expected = verifier.calibrator.probability(raw, ["has_genre"])
    np.testing.assert_allclose(verifier.probability(keys), expected)


def test_stacked_scorer_falls_back_when_the_holdout_is_tiny(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="kgenrich.verification.scorers"):
        verifier = _fit(_graph(12), "stacked", holdout=0.05)
    assert isinstance(verifier, CalibratedScorer)
    assert "stacked verifier not fitted" in caplog.text


def test_unknown_scorer_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="kge_scorer"):
        _fit(_graph(), "magic")


def test_calibrator_fits_on_two_examples() -> None:
    """Too few examples for any cross-validation fold: Platt, not a crash."""
    from kgenrich.verification.calibrate import Calibrator

    cal = Calibrator.fit([0.1, 2.0], [0, 1], ["r", "r"])
    assert cal.method == "platt"


def test_both_scorers_keep_their_holdout_for_the_reliability_diagram() -> None:
    stacked = _fit(_graph(), "stacked")
    calibrated = _fit(_graph(), "calibrated")
    positives = int(calibrated.metrics["holdout positives"])
    for verifier in (stacked, calibrated):
        held = verifier.holdout
        assert held is not None and len(held.probability) == len(held.labels) > 0
        assert set(held.labels) == {0, 1} and all(0.0 <= p <= 1.0 for p in held.probability)
    assert calibrated.holdout is not None and len(calibrated.holdout.labels) == 2 * positives
    # the stacked scorer's are the out-of-fold probabilities its reported ECE was measured on
    assert stacked.holdout is not None and "out of fold" in stacked.holdout.source
    ece = expected_calibration_error(stacked.holdout.probability, stacked.holdout.labels)
    assert ece == pytest.approx(stacked.metrics["stacked holdout ECE (5-fold CV)"])
