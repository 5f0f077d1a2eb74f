"""Calibration, metrics and corruptions on small hand-made inputs (no model, no data files)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kgenrich.verification.calibrate import Calibrator, best_threshold
from kgenrich.verification.metrics import (
    accuracy,
    brier_score,
    expected_calibration_error,
    f1,
    reliability_diagram,
)
from kgenrich.verification.negatives import tail_corruptions


def _separable(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pos = rng.uniform(1.0, 2.0, n)
    neg = rng.uniform(-2.0, -1.0, n)
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(n, dtype=int), np.zeros(n, dtype=int)])
    return scores, labels, np.array(["P1"] * (2 * n), dtype=object)


@pytest.mark.parametrize("method", ["platt", "isotonic", "auto"])
def test_separable_toy_set_is_classified_perfectly(method: str) -> None:
    scores, labels, relations = _separable()
    cal = Calibrator.fit(scores, labels, relations, method=method)  # type: ignore[arg-type]

    assert accuracy(labels, cal.decide(scores, relations)) == 1.0
    probs = cal.probability(scores, relations)
    assert probs[labels == 1].min() > probs[labels == 0].max()
    order = np.argsort(scores)
    assert np.all(np.diff(probs[order]) >= -1e-12), "probability must not decrease with score"
    assert cal.method in ("platt", "isotonic")


def test_thresholds_are_per_relation() -> None:
    # relation A lives around 100, relation B around 0: no single threshold separates both
    a_pos, a_neg = np.linspace(105, 110, 30), np.linspace(95, 100, 30)
    b_pos, b_neg = np.linspace(0.6, 1.0, 30), np.linspace(0.0, 0.4, 30)
    scores = np.concatenate([a_pos, a_neg, b_pos, b_neg])
    labels = np.array([1] * 30 + [0] * 30 + [1] * 30 + [0] * 30)
    relations = np.array(["A"] * 60 + ["B"] * 60, dtype=object)

    cal = Calibrator.fit(scores, labels, relations, min_per_relation=20)

    assert set(cal.thresholds) == {"A", "B"}
    assert 100 < cal.thresholds["A"] < 105
    assert 0.4 < cal.thresholds["B"] < 0.6
    decisions = cal.decide(scores, relations)
    assert accuracy(labels[:60], decisions[:60]) == 1.0
    assert accuracy(labels[60:], decisions[60:]) == 1.0
    # and the global threshold alone would not do it
    global_only = scores >= cal.global_threshold
    assert accuracy(labels, global_only) < 1.0


def test_rare_and_unseen_relations_use_the_global_threshold() -> None:
    scores, labels, relations = _separable(n=40)
    relations = relations.copy()
    relations[:3] = "RARE"  # three positives only: too few and a single class
    cal = Calibrator.fit(scores, labels, relations, min_per_relation=10)

    assert "RARE" not in cal.thresholds
    probe = np.array([cal.global_threshold + 1e-6, cal.global_threshold - 1e-6])
    assert cal.decide(probe, ["RARE", "RARE"]).tolist() == [True, False]
    assert cal.decide(probe, ["NEVER_SEEN", "NEVER_SEEN"]).tolist() == [True, False]


def test_nan_scores_are_rejected_with_nan_probability() -> None:
    scores, labels, relations = _separable()
    cal = Calibrator.fit(scores, labels, relations)
    out = cal.probability([math.nan, 1.5], ["P1", "P1"])
    assert math.isnan(out[0]) and out[1] > 0.5
    assert cal.decide([math.nan], ["P1"]).tolist() == [False]


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_json_round_trip_gives_identical_outputs(method: str) -> None:
    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.normal(1.0, 1.0, 200), rng.normal(-1.0, 1.0, 200)])
    labels = np.array([1] * 200 + [0] * 200)
    relations = rng.choice(np.array(["A", "B", "C"], dtype=object), size=400)
    cal = Calibrator.fit(scores, labels, relations, method=method)  # type: ignore[arg-type]

    again = Calibrator.from_json(cal.to_json())

    assert again == cal
    np.testing.assert_array_equal(
        again.probability(scores, relations), cal.probability(scores, relations)
    )
    np.testing.assert_array_equal(again.decide(scores, relations), cal.decide(scores, relations))


def test_auto_method_records_its_cross_validated_choice() -> None:
    rng = np.random.default_rng(5)
    scores = np.concatenate([rng.normal(1.0, 1.0, 300), rng.normal(-1.0, 1.0, 300)])
    labels = np.array([1] * 300 + [0] * 300)
    cal = Calibrator.fit(scores, labels, np.array(["R"] * 600, dtype=object))
    assert set(cal.selection) == {"platt", "isotonic"}
    assert cal.method == min(cal.selection, key=lambda m: (cal.selection[m], m != "platt"))


def test_fit_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="positive and one negative"):
        Calibrator.fit([1.0, 2.0], [1, 1], ["R", "R"])


def test_best_threshold_maximizes_accuracy() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9, 0.35])
    labels = np.array([0, 0, 0, 1, 1, 1])
    threshold, acc = best_threshold(scores, labels)
    assert acc == 1.0
    assert 0.3 < threshold <= 0.35


def test_metrics_on_known_values() -> None:
    labels = np.array([1, 1, 0, 0])
    assert accuracy(labels, [True, False, False, True]) == 0.5
    assert f1(labels, [True, True, True, False]) == pytest.approx(0.8)
    assert f1(labels, [False, False, False, False]) == 0.0
    assert brier_score([1.0, 0.5, 0.0, 0.5], labels) == pytest.approx(0.125)


def test_ece_and_reliability_diagram() -> None:
    # 10 triples at p=0.25 of which a quarter-ish are true, 10 at p=0.95 all true
    probs = np.array([0.25] * 8 + [0.95] * 10)
    labels = np.array([1, 1, 0, 0, 0, 0, 0, 0] + [1] * 10)
    diagram = reliability_diagram(probs, labels, n_bins=10)
    assert sum(diagram.counts) == 18
    assert diagram.counts[2] == 8 and diagram.counts[9] == 10
    assert diagram.fraction_positive[2] == pytest.approx(0.25)
    assert diagram.mean_probability[0] is None
    assert expected_calibration_error(probs, labels) == pytest.approx(10 / 18 * 0.05)
    # p = 1.0 falls into the last bin, not past it
    assert reliability_diagram([1.0, 0.0], [1, 0], n_bins=10).counts == (1,) + (0,) * 8 + (1,)
    with pytest.raises(ValueError, match="finite"):
        expected_calibration_error([math.nan], [1])


# -------------------------------------------------------------------------- corruptions

KNOWN = [
    ("film1", "director", "alice"),
    ("film2", "director", "bob"),
    ("film3", "director", "carol"),
    ("film1", "director", "bob"),  # co-directed: (film1, director, bob) is true
    ("film1", "genre", "drama"),
    ("film2", "genre", "comedy"),
    ("film3", "genre", "horror"),
    ("film4", "country", "france"),
]


def test_corruptions_are_type_consistent_and_never_true() -> None:
    result = tail_corruptions(KNOWN[:7], known=KNOWN, per_triple=1, seed=1)
    known = set(KNOWN)
    tails = {r: {t for _, rr, t in KNOWN if rr == r} for _, r, _ in KNOWN}

    assert result.negatives
    for (h, r, t), source in zip(result.negatives, result.source_index, strict=True):
        assert (h, r, t) not in known
        assert t in tails[r]
        assert (h, r) == KNOWN[source][:2]
    # alice and bob are both true directors of film1, so carol is the only candidate left
    film1 = [t for h, r, t in result.negatives if (h, r) == ("film1", "director")]
    assert film1 and set(film1) == {"carol"}


def test_corruptions_report_what_could_not_be_made() -> None:
    result = tail_corruptions([KNOWN[7]], known=KNOWN, per_triple=2, seed=0)
    assert result.negatives == ()
    assert result.skipped and result.skipped[0][0] == 0
    assert "country" in result.skipped[0][1]


def test_corruptions_are_deterministic() -> None:
    a = tail_corruptions(KNOWN, known=KNOWN, per_triple=2, seed=7)
    b = tail_corruptions(list(KNOWN), known=list(reversed(KNOWN)), per_triple=2, seed=7)
    assert a == b


_labels = st.sampled_from([f"e{i}" for i in range(8)])
_relations = st.sampled_from(["r0", "r1", "r2"])


@settings(max_examples=60, deadline=None)
@given(
    graph=st.lists(st.tuples(_labels, _relations, _labels), min_size=1, max_size=40),
    per_triple=st.integers(min_value=1, max_value=4),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_corruption_properties(
    graph: list[tuple[str, str, str]], per_triple: int, seed: int
) -> None:
    result = tail_corruptions(graph, known=graph, per_triple=per_triple, seed=seed)
    known = set(graph)
    tails = {r: {t for _, rr, t in graph if rr == r} for _, r, _ in graph}
    assert not known & set(result.negatives)
    assert all(t in tails[r] for _, r, t in result.negatives)
    per_source: dict[int, int] = {}
    for i in result.source_index:
        per_source[i] = per_source.get(i, 0) + 1
    assert all(n <= per_triple for n in per_source.values())
    short = {i for i, _ in result.skipped}
    assert all(per_source.get(i, 0) == per_triple for i in range(len(graph)) if i not in short)
