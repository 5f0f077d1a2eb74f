"""The candidate-confidence combiner on hand-made rows (no model files, no data)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kgenrich.verification.confidence import (
    DEFAULT_MODEL,
    DEFAULT_THRESHOLD,
    ConfidenceFeatures,
    ConfidenceModel,
    candidate_confidence,
    features_from_triple,
    threshold_for_precision,
)


def _row(
    p: float | None,
    agreement: float,
    *,
    relation: str = "has_genre",
    samples: int = 3,
    **kw: Any,
) -> ConfidenceFeatures:
    return ConfidenceFeatures(
        relation=relation, kge_probability=p, agreement=agreement, samples=samples, **kw
    )


def _separable(n: int = 60, seed: int = 0) -> tuple[list[ConfidenceFeatures], np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i in range(n):
        true = i % 2 == 0
        p = rng.uniform(0.7, 0.95) if true else rng.uniform(0.05, 0.3)
        a = rng.choice([2 / 3, 1.0]) if true else rng.choice([1 / 3, 2 / 3])
        rows.append(_row(float(p), float(a), relation="r1" if i % 3 else "r2"))
        labels.append(int(true))
    return rows, np.array(labels)


def test_learns_a_separable_toy_set() -> None:
    rows, y = _separable()
    model = ConfidenceModel.fit(rows, y, c=10.0)
    p = model.predict(rows)
    assert ((p >= 0.5) == (y == 1)).all()
    assert model.weights["kge_logit"] > 0
    # a column that never varies from zero (no extracted triples) carries no weight
    assert model.weights["evidence_found"] == 0.0
    assert model.weights["evidence_missing"] == 0.0


def test_sign_constraints_hold_even_against_the_data() -> None:
    # agreement anti-correlated with truth: the fit must not give it a negative weight
    rows = [_row(0.5, 1.0 if i % 2 else 1 / 3) for i in range(40)]
    y = np.array([0 if i % 2 else 1 for i in range(40)])
    model = ConfidenceModel.fit(rows, y)
    assert model.weights["agreement"] == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    p=st.floats(0.0, 1.0),
    dp=st.floats(0.0, 1.0),
    a=st.floats(0.0, 1.0),
    da=st.floats(0.0, 1.0),
    relation=st.sampled_from(["has_genre", "directed_by", "starring", "unknown_rel"]),
    catalog=st.sampled_from([None, True, False]),
    new=st.booleans(),
)
def test_default_model_is_monotone_in_agreement_and_kge(
    p: float, dp: float, a: float, da: float, relation: str, catalog: bool | None, new: bool
) -> None:
    common: dict[str, Any] = {"relation": relation, "catalog_agrees": catalog, "new_entity": new}
    lo = candidate_confidence(_row(p, a, **common))
    assert candidate_confidence(_row(min(1.0, p + dp), a, **common)) >= lo - 1e-12
    assert candidate_confidence(_row(p, min(1.0, a + da), **common)) >= lo - 1e-12


def test_default_model_weights_come_from_a_recorded_fit() -> None:
    assert DEFAULT_MODEL.source["command"].startswith("python bench/confidence.py")
    assert DEFAULT_MODEL.source["n_rows"] > 0
    assert DEFAULT_MODEL.weights["kge_logit"] >= 0
    assert DEFAULT_MODEL.weights["agreement"] >= 0
    assert 0.0 < DEFAULT_THRESHOLD < 1.0


def test_save_load_round_trip() -> None:
    rows, y = _separable()
    model = ConfidenceModel.fit(rows, y, source={"command": "test"})
    again = ConfidenceModel.from_json(model.to_json())
    assert again == model
    np.testing.assert_array_equal(again.predict(rows), model.predict(rows))


def test_from_json_rejects_unknown_features() -> None:
    text = DEFAULT_MODEL.to_json().replace('"kge_logit"', '"kge_logitt"')
    with pytest.raises(ValueError, match="unknown features"):
        ConfidenceModel.from_json(text)


def test_threshold_for_precision_reaches_the_target_on_fit_data() -> None:
    rng = np.random.default_rng(3)
    rows, labels = [], []
    for _ in range(200):
        true = bool(rng.random() < 0.5)
        # overlapping classes: precision 0.9 needs a real cut, not "accept everything"
        p = float(np.clip(rng.normal(0.65 if true else 0.4, 0.15), 0.0, 1.0))
        rows.append(_row(p, float(rng.choice([1 / 3, 2 / 3, 1.0]))))
        labels.append(int(true))
    y = np.array(labels)
    model = ConfidenceModel.fit(rows, y)
    choice = model.threshold_for_precision(0.9)
    assert choice.achieved
    accepted = model.predict(rows) >= choice.threshold
    assert y[accepted].mean() >= 0.9
    assert choice.precision == pytest.approx(y[accepted].mean(), abs=1e-6)
    assert choice.n_accepted == int(accepted.sum())
    # it is the lowest such threshold: accepting the next-lower score breaks the target
    lower = np.sort(np.unique(model.predict(rows)))
    below = lower[lower < choice.threshold]
    if len(below):
        assert y[model.predict(rows) >= below[-1]].mean() < 0.9
    # and explicit rows give the same answer as the stored fit data
    assert model.threshold_for_precision(0.9, rows=rows, labels=y).threshold == pytest.approx(
        choice.threshold, abs=1e-5
    )


def test_threshold_for_precision_unreachable_accepts_nothing() -> None:
    choice = threshold_for_precision(np.array([0.9, 0.8]), np.array([0, 0]), 0.9)
    assert not choice.achieved and choice.threshold == math.inf and choice.n_accepted == 0


def test_missing_kge_probability_is_explicit() -> None:
    none_row = _row(None, 1.0)
    nan_row = _row(math.nan, 1.0)
    assert candidate_confidence(none_row) == candidate_confidence(nan_row)
    assert 0.0 < candidate_confidence(none_row) < 1.0
    # missing is not read as probability 0 or 1: it uses the kge_missing weight instead
    assert candidate_confidence(none_row) != candidate_confidence(_row(0.0, 1.0))
    assert candidate_confidence(none_row) != candidate_confidence(_row(1.0, 1.0))
    rows, y = _separable()
    rows = rows + [_row(None, 1.0), _row(None, 1 / 3)]
    y = np.concatenate([y, [1, 0]])
    model = ConfidenceModel.fit(rows, y)
    assert np.isfinite(model.predict(rows)).all()


def test_fallback_probability_used_only_without_kge() -> None:
    model = ConfidenceModel(weights={"kge_logit": 1.0, "fallback_logit": 0.5}, intercept=0.0)
    with_kge = _row(0.8, 1.0, fallback_probability=0.01)
    assert model.predict([with_kge])[0] == pytest.approx(model.predict([_row(0.8, 1.0)])[0])
    assert model.predict([_row(None, 1.0, fallback_probability=0.9)])[0] > 0.5


def test_type_failure_scores_zero_and_single_sample_agreement_is_missing() -> None:
    assert candidate_confidence(_row(0.99, 1.0, type_ok=False)) == 0.0
    model = ConfidenceModel(weights={"agreement": 2.0, "single_sample": 0.5}, intercept=0.0)
    # k == 1: agreement 1.0 is not read as consensus; the single_sample weight stands in for it
    one = model.predict([_row(0.5, 1.0, samples=1)])[0]
    assert one == pytest.approx(model.predict([_row(0.5, 0.25, samples=3)])[0])
    assert one == pytest.approx(model.predict([_row(0.5, 0.0, samples=1)])[0])


def test_fit_rejects_mismatched_or_one_class_labels() -> None:
    rows, y = _separable(10)
    with pytest.raises(ValueError):
        ConfidenceModel.fit(rows, y[:-1])
    with pytest.raises(ValueError):
        ConfidenceModel.fit(rows, np.ones(len(rows)))


def test_features_from_triple_reads_provenance() -> None:
    from kgenrich.kg.records import Provenance, SourceKind, Triple

    completed = Triple(
        head="item/1",
        relation="has_genre",
        tail="genre/drama",
        provenance=Provenance(
            source=SourceKind.COMPLETED, scores={"agreement": 2 / 3, "samples": 3.0}
        ),
    )
    f = features_from_triple(completed, kge_probability=None, catalog_agrees=True)
    assert (f.agreement, f.samples, f.extracted, f.kge_probability) == (2 / 3, 3, False, None)
    extracted = Triple(
        head="item/1",
        relation="has_genre",
        tail="genre/drama",
        provenance=Provenance(source=SourceKind.EXTRACTED, evidence="a drama"),
    )
    g = features_from_triple(extracted, kge_probability=0.7)
    assert g.extracted and g.evidence_found and g.samples == 1


def test_default_model_is_the_packaged_json_with_the_reported_numbers() -> None:
    """The shipped weights live in one place, the package; the report file holds the same."""
    import json
    from importlib.resources import files
    from pathlib import Path

    packaged = json.loads(
        files("kgenrich.verification").joinpath("default_confidence_model.json").read_text())
    assert packaged["accept_at"] == DEFAULT_THRESHOLD
    assert ConfidenceModel.from_json(json.dumps(packaged)) == DEFAULT_MODEL
    report = Path(__file__).resolve().parents[2] / "reports" / "confidence_default_model.json"
    if report.is_file():
        assert {k: v for k, v in packaged.items() if k != "accept_at"} == json.loads(
            report.read_text())
