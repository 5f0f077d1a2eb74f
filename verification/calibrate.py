"""Turn raw KGE scores into accept/reject decisions and calibrated probabilities.

Contract: a ``Calibrator`` is fitted on validation positives and negatives only (scores, 0/1
labels, relation labels) and applied to anything else. ``decide`` accepts a triple when its score
reaches its relation's threshold (the global threshold for relations with too few validation
examples); ``probability`` maps the scaled margin to that threshold through Platt scaling or
isotonic regression, whichever has the lower cross-validated Brier score. NaN scores (triples the
verifier does not know) get NaN probability and are never accepted.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression

from kgenrich.verification.logistic import fit_logistic, sigmoid_exp

logger = logging.getLogger(__name__)

CalibrationMethod = Literal["platt", "isotonic"]

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Calibrator:
    """Per-relation thresholds plus a probability map, fitted on validation data.

    A triple with relation r and score s has margin m = (s - threshold_r) / scale_r, where scale_r
    is the spread of r's validation scores: models give relations very different score ranges,
    and one probability map over raw margins would be over- or under-confident per relation.
    """

    thresholds: Mapping[str, float]
    scales: Mapping[str, float]
    global_threshold: float
    global_scale: float
    method: CalibrationMethod
    #: p = sigmoid(platt[0] * m + platt[1]) when method == "platt"
    platt: tuple[float, float] = (1.0, 0.0)
    #: knots of the isotonic fit (p = interp(m, x, y), clipped) when method == "isotonic"
    isotonic_x: tuple[float, ...] = ()
    isotonic_y: tuple[float, ...] = ()
    #: cross-validated Brier score per candidate method (how ``method`` was chosen)
    selection: Mapping[str, float] = field(default_factory=dict)
    min_per_relation: int = 20

    @classmethod
    def fit(
        cls,
        scores: Sequence[float] | np.ndarray,
        labels: Sequence[int] | Sequence[bool] | np.ndarray,
        relations: Sequence[str] | np.ndarray,
        *,
        min_per_relation: int = 20,
        method: CalibrationMethod | Literal["auto"] = "auto",
        n_folds: int = 5,
        seed: int = 0,
    ) -> Calibrator:
        """Fit thresholds and the probability map on validation positives/negatives.

        A relation gets its own threshold only with at least ``min_per_relation`` validation
        examples including both classes; others use the global threshold. With ``method="auto"``
        Platt scaling and isotonic regression are compared by ``n_folds``-fold cross-validated
        Brier score (thresholds refitted inside each fold) and the better one is kept.
        """
        s, y, rel = _clean_inputs(scores, labels, relations)
        if len(s) < 2 or y.min() == y.max():
            raise ValueError("calibration needs at least one positive and one negative example")
        selection: dict[str, float] = {}
        if method == "auto":
            selection = _cross_validated_brier(
                s, y, rel, min_per_relation=min_per_relation, n_folds=n_folds, seed=seed
            )
            # ties go to Platt: two parameters, smooth, and monotone beyond the validation range
            chosen: CalibrationMethod = (
                "isotonic"
                if "isotonic" in selection and selection["isotonic"] < selection["platt"]
                else "platt"  # also when no fold could be scored
            )
        else:
            chosen = method
        thresholds, scales, global_threshold, global_scale = _fit_thresholds(
            s, y, rel, min_per_relation=min_per_relation
        )
        base = cls(
            thresholds=thresholds,
            scales=scales,
            global_threshold=global_threshold,
            global_scale=global_scale,
            method=chosen,
            selection=selection,
            min_per_relation=min_per_relation,
        )
        margins = base.margin(s, rel)
        platt, iso_x, iso_y = _fit_probability_map(margins, y, chosen)
        logger.info(
            "calibrator: %d per-relation thresholds, method=%s, cv brier %s",
            len(thresholds),
            chosen,
            ", ".join(f"{name} {brier:.3f}" for name, brier in selection.items()),
        )
        return cls(
            thresholds=thresholds,
            scales=scales,
            global_threshold=global_threshold,
            global_scale=global_scale,
            method=chosen,
            platt=platt,
            isotonic_x=iso_x,
            isotonic_y=iso_y,
            selection=selection,
            min_per_relation=min_per_relation,
        )

    def margin(
        self, scores: Sequence[float] | np.ndarray, relations: Sequence[str] | np.ndarray
    ) -> np.ndarray:
        """Scaled distance to the relation's threshold (>= 0 means accept); NaN stays NaN."""
        s = np.asarray(scores, dtype=np.float64)
        rel = _as_str_array(relations, len(s))
        thr = np.array(
            [self.thresholds.get(r, self.global_threshold) for r in rel], dtype=np.float64
        )
        scale = np.array([self.scales.get(r, self.global_scale) for r in rel], dtype=np.float64)
        return (s - thr) / scale

    def decide(
        self, scores: Sequence[float] | np.ndarray, relations: Sequence[str] | np.ndarray
    ) -> np.ndarray:
        """Accept (True) where score >= the relation's threshold; NaN scores are rejected."""
        m = self.margin(scores, relations)
        with np.errstate(invalid="ignore"):
            return np.asarray(m >= 0.0, dtype=bool)

    def probability(
        self, scores: Sequence[float] | np.ndarray, relations: Sequence[str] | np.ndarray
    ) -> np.ndarray:
        """Calibrated probability that each triple is true; NaN where the score is NaN."""
        m = self.margin(scores, relations)
        if self.method == "platt":
            a, b = self.platt
            return sigmoid_exp(a * m + b)
        p = np.interp(m, np.asarray(self.isotonic_x), np.asarray(self.isotonic_y))
        p[np.isnan(m)] = math.nan
        return np.asarray(p, dtype=np.float64)

    def to_json(self) -> str:
        """Serialize to a JSON string (``from_json`` restores an identical calibrator)."""
        payload: dict[str, Any] = {
            "format_version": _FORMAT_VERSION,
            "thresholds": dict(self.thresholds),
            "scales": dict(self.scales),
            "global_threshold": self.global_threshold,
            "global_scale": self.global_scale,
            "method": self.method,
            "platt": list(self.platt),
            "isotonic_x": list(self.isotonic_x),
            "isotonic_y": list(self.isotonic_y),
            "selection": dict(self.selection),
            "min_per_relation": self.min_per_relation,
        }
        return json.dumps(payload, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Calibrator:
        """Inverse of ``to_json``."""
        data = json.loads(text)
        if data.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"unsupported calibrator format {data.get('format_version')!r}")
        if data["method"] not in ("platt", "isotonic"):
            raise ValueError(f"unknown calibration method {data['method']!r}")
        platt = data["platt"]
        return cls(
            thresholds={str(k): float(v) for k, v in data["thresholds"].items()},
            scales={str(k): float(v) for k, v in data["scales"].items()},
            global_threshold=float(data["global_threshold"]),
            global_scale=float(data["global_scale"]),
            method=data["method"],
            platt=(float(platt[0]), float(platt[1])),
            isotonic_x=tuple(float(x) for x in data["isotonic_x"]),
            isotonic_y=tuple(float(x) for x in data["isotonic_y"]),
            selection={str(k): float(v) for k, v in data["selection"].items()},
            min_per_relation=int(data["min_per_relation"]),
        )


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The accuracy-maximizing threshold (accept score >= t) and that accuracy.

    Candidates lie midway between consecutive distinct scores (and just outside the range); among
    equally accurate candidates the middle one is taken, which keeps it away from both classes.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    order = np.argsort(-s, kind="stable")
    s_desc, y_desc = s[order], y[order]
    n_neg = int((~y).sum())
    # accepting the top k: correct = positives among them + negatives outside them
    tp = np.concatenate([[0], np.cumsum(y_desc)])
    fp = np.concatenate([[0], np.cumsum(~y_desc)])
    correct = tp + (n_neg - fp)
    # a cut is only realizable between two different scores
    valid_cut = np.ones(len(s) + 1, dtype=bool)
    valid_cut[1:-1] = s_desc[:-1] != s_desc[1:]
    correct = np.where(valid_cut, correct, -1)
    best = np.flatnonzero(correct == correct.max())
    k = int(best[len(best) // 2])
    spread = float(s_desc[0] - s_desc[-1]) or 1.0
    if k == 0:
        threshold = float(s_desc[0]) + 0.5 * spread
    elif k == len(s):
        threshold = float(s_desc[-1]) - 0.5 * spread
    else:
        threshold = float(s_desc[k - 1] + s_desc[k]) / 2.0
    return threshold, float(correct[k]) / len(s)


# --------------------------------------------------------------------------------- helpers


def _fit_thresholds(
    s: np.ndarray, y: np.ndarray, rel: np.ndarray, *, min_per_relation: int
) -> tuple[dict[str, float], dict[str, float], float, float]:
    global_threshold, _ = best_threshold(s, y)
    global_scale = _scale(s)
    thresholds: dict[str, float] = {}
    scales: dict[str, float] = {}
    for r in np.unique(rel):
        in_rel = rel == r
        y_r = y[in_rel]
        # one class only: any threshold is "perfect" on validation and meaningless elsewhere
        if in_rel.sum() < min_per_relation or y_r.min() == y_r.max():
            continue
        thresholds[str(r)], _ = best_threshold(s[in_rel], y_r)
        scales[str(r)] = _scale(s[in_rel])
    return thresholds, scales, global_threshold, global_scale


def _scale(s: np.ndarray) -> float:
    std = float(np.std(s))
    return std if std > 0 and math.isfinite(std) else 1.0


def _fit_probability_map(
    margins: np.ndarray, y: np.ndarray, method: CalibrationMethod
) -> tuple[tuple[float, float], tuple[float, ...], tuple[float, ...]]:
    if method == "platt":
        # C large: Platt scaling is a 1-D fit on thousands of points and needs no shrinkage
        # (scikit-learn's default max_iter of 100, which every saved calibrator was fitted with)
        coef, intercept = fit_logistic(
            margins.reshape(-1, 1), y.astype(int), c=1e6, max_iter=100, balanced=False
        )
        return (float(coef[0]), intercept), (), ()
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(margins, y.astype(float))
    return (
        (1.0, 0.0),
        tuple(float(x) for x in iso.X_thresholds_),
        tuple(float(v) for v in iso.y_thresholds_),
    )


def _cross_validated_brier(
    s: np.ndarray, y: np.ndarray, rel: np.ndarray, *, min_per_relation: int, n_folds: int, seed: int
) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    folds = np.empty(len(s), dtype=int)
    # stratify by label so every fold sees both classes
    for label in (False, True):
        idx = np.flatnonzero(y == label)
        folds[rng.permutation(idx)] = np.arange(len(idx)) % n_folds
    squared: dict[str, list[np.ndarray]] = {"platt": [], "isotonic": []}
    for k in range(n_folds):
        fit_part, held_out = folds != k, folds == k
        if not held_out.any() or not fit_part.any() or y[fit_part].min() == y[fit_part].max():
            continue  # too few examples for this fold (tiny holdouts)
        thresholds, scales, gt, gs = _fit_thresholds(
            s[fit_part], y[fit_part], rel[fit_part], min_per_relation=min_per_relation
        )
        fold_cal = Calibrator(
            thresholds=thresholds,
            scales=scales,
            global_threshold=gt,
            global_scale=gs,
            method="platt",
        )
        m_fit = fold_cal.margin(s[fit_part], rel[fit_part])
        m_out = fold_cal.margin(s[held_out], rel[held_out])
        for method in ("platt", "isotonic"):
            platt, iso_x, iso_y = _fit_probability_map(m_fit, y[fit_part], method)
            if method == "platt":
                p = sigmoid_exp(platt[0] * m_out + platt[1])
            else:
                p = np.interp(m_out, np.asarray(iso_x), np.asarray(iso_y))
            squared[method].append((p - y[held_out]) ** 2)
    return {method: float(np.concatenate(v).mean()) for method, v in squared.items() if v}


def _as_str_array(relations: Sequence[str] | np.ndarray, n: int) -> np.ndarray:
    rel = np.asarray(relations, dtype=object)
    if rel.shape != (n,):
        raise ValueError(f"expected {n} relations, got shape {rel.shape}")
    return rel


def _clean_inputs(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | Sequence[bool] | np.ndarray,
    relations: Sequence[str] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    rel = _as_str_array(relations, len(s))
    if y.shape != s.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ in shape")
    finite = np.isfinite(s)
    if not finite.all():
        # unknown-entity triples carry NaN scores; they say nothing about where to put a threshold
        logger.warning("calibration: ignoring %d non-finite scores", int((~finite).sum()))
    return s[finite], y[finite], rel[finite]
