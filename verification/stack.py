"""Stacked verifier: one logistic regression over KGE scores and graph features.

Contract: ``StackedClassifier.fit`` sees validation positives/negatives only (feature matrix,
0/1 labels, relation labels). Relations with at least ``min_per_relation`` validation examples
get their own intercept and their own copy of every feature weight (shrunk towards the shared
weights by the L2 penalty); rarer relations use the shared weights alone. The L2 strength is
chosen by cross-validated accuracy on the same validation data. ``probability`` is the fitted
P(true); ``decide`` accepts at P >= 0.5. Rows with a NaN feature get NaN and are rejected.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kgenrich.verification.kge import KGEModel
from kgenrich.verification.logistic import fit_logistic, sigmoid_exp
from kgenrich.verification.metrics import expected_calibration_error
from kgenrich.verification.triples import LabeledTriple

logger = logging.getLogger(__name__)

#: columns of ``kge_features``
KGE_FEATURE_NAMES: tuple[str, ...] = (
    "kge_score",
    "kge_log_likelihood",
    "kge_neg_log_tail_rank",
    "kge_neg_log_head_rank",
)

DEFAULT_C_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


@dataclass(frozen=True)
class StackedClassifier:
    """A fitted stacked logistic regression (plain floats, so it serializes as JSON)."""

    feature_names: tuple[str, ...]
    #: standardization fitted on the validation features
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    #: relations with their own intercept and weights, in column order
    relations: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    c: float
    min_per_relation: int
    #: cross-validated accuracy per candidate C (how ``c`` was chosen)
    selection: Mapping[float, float] = field(default_factory=dict)
    #: out-of-fold accuracy and ECE of the chosen C on validation (an honest estimate)
    cv_accuracy: float = math.nan
    cv_ece: float = math.nan
    #: the chosen C's out-of-fold P(true) and the labels of the rows it was fitted on
    cv_probability: tuple[float, ...] = ()
    cv_labels: tuple[int, ...] = ()

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        labels: Sequence[int] | np.ndarray,
        relations: Sequence[str] | np.ndarray,
        *,
        feature_names: Sequence[str],
        c_grid: Sequence[float] = DEFAULT_C_GRID,
        min_per_relation: int = 20,
        n_folds: int = 5,
        seed: int = 0,
    ) -> StackedClassifier:
        """Choose C by ``n_folds``-fold CV accuracy (ties: smaller C), then refit on everything.

        Rows with a non-finite feature are left out of the fit.
        """
        x, y, rel = _clean(features, labels, relations, len(feature_names))
        if len(y) < 2 * n_folds or y.min() == y.max():
            raise ValueError("stacking needs both classes and at least 2 * n_folds examples")
        folds = stratified_folds(y, n_folds=n_folds, seed=seed)
        selection: dict[float, float] = {}
        out_of_fold: dict[float, np.ndarray] = {}
        for c in c_grid:
            p = np.empty(len(y))
            for k in range(n_folds):
                fit_part, held_out = folds != k, folds == k
                model = cls._fit_once(
                    x[fit_part], y[fit_part], rel[fit_part], feature_names, c, min_per_relation
                )
                p[held_out] = model.probability(x[held_out], rel[held_out])
            out_of_fold[c] = p
            selection[c] = float(((p >= 0.5) == y).mean())
        best = max(selection.values())
        chosen = min(c for c, acc in selection.items() if acc == best)
        final = cls._fit_once(x, y, rel, feature_names, chosen, min_per_relation)
        logger.info("stacker: C=%g, cv accuracy %s", chosen,
                    ", ".join(f"C={c:g} {acc:.3f}" for c, acc in selection.items()))
        return dataclasses.replace(
            final,
            selection=selection,
            cv_accuracy=best,
            cv_ece=expected_calibration_error(out_of_fold[chosen], y),
            cv_probability=tuple(float(p) for p in out_of_fold[chosen]),
            cv_labels=tuple(int(v) for v in y),
        )

    @classmethod
    def _fit_once(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        rel: np.ndarray,
        feature_names: Sequence[str],
        c: float,
        min_per_relation: int,
    ) -> StackedClassifier:
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        counts = Counter(rel.tolist())
        own = tuple(
            sorted(
                r
                for r, n in counts.items()
                # a one-class relation would only learn "always" or "never"
                if n >= min_per_relation and 0 < y[rel == r].sum() < n
            )
        )
        base = cls(
            feature_names=tuple(feature_names),
            mean=tuple(float(v) for v in mean),
            scale=tuple(float(v) for v in scale),
            relations=own,
            coef=(),
            intercept=0.0,
            c=c,
            min_per_relation=min_per_relation,
        )
        coef, intercept = fit_logistic(
            base.design(x, rel), y.astype(int), c=c, max_iter=5000, balanced=False
        )
        return dataclasses.replace(
            base, coef=tuple(float(v) for v in coef), intercept=intercept
        )

    def design(self, features: np.ndarray, relations: Sequence[str] | np.ndarray) -> np.ndarray:
        """Standardized features, relation indicators, and relation x feature interactions."""
        z = (np.asarray(features, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(
            self.scale
        )
        rel = np.asarray(relations, dtype=object)
        onehot = np.zeros((len(z), len(self.relations)))
        column = {r: i for i, r in enumerate(self.relations)}
        for row, r in enumerate(rel):
            if r in column:
                onehot[row, column[r]] = 1.0
        interactions = (onehot[:, :, None] * z[:, None, :]).reshape(len(z), -1)
        return np.hstack([z, onehot, interactions])

    def probability(
        self, features: np.ndarray, relations: Sequence[str] | np.ndarray
    ) -> np.ndarray:
        """P(true) per row; NaN where a feature is NaN."""
        x = np.asarray(features, dtype=np.float64)
        finite = np.isfinite(x).all(axis=1)
        out = np.full(len(x), math.nan)
        if finite.any():
            rel = np.asarray(relations, dtype=object)[finite]
            logits = self.design(x[finite], rel) @ np.asarray(self.coef) + self.intercept
            out[finite] = sigmoid_exp(logits)
        return out

    def decide(self, features: np.ndarray, relations: Sequence[str] | np.ndarray) -> np.ndarray:
        """Accept where P(true) >= 0.5; NaN rows are rejected."""
        p = self.probability(features, relations)
        with np.errstate(invalid="ignore"):
            return np.asarray(p >= 0.5, dtype=bool)

    def weights(self) -> dict[str, float]:
        """The shared weight of each (standardized) feature, for reports."""
        return dict(zip(self.feature_names, self.coef[: len(self.feature_names)], strict=True))


def kge_features(
    model: KGEModel, triples: Sequence[LabeledTriple], *, scores: np.ndarray | None = None
) -> np.ndarray:
    """Columns ``KGE_FEATURE_NAMES``: raw score, log-likelihood, -log raw tail and head ranks.

    Every triple must be known to ``model`` (``KGEModel.known_mask``). ``scores``: the raw
    scores of ``triples`` when the caller already has them (not computed twice)."""
    rows = list(triples)
    return np.column_stack(
        [
            model.score(rows) if scores is None else scores,
            model.log_likelihood(rows),
            -np.log(model.ranks(rows, side="tail")),
            -np.log(model.ranks(rows, side="head")),
        ]
    )


def stratified_folds(labels: np.ndarray, *, n_folds: int, seed: int) -> np.ndarray:
    """Fold number per row, each label spread evenly over the folds."""
    y = np.asarray(labels).astype(bool)
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=int)
    for label in (False, True):
        idx = np.flatnonzero(y == label)
        folds[rng.permutation(idx)] = np.arange(len(idx)) % n_folds
    return folds


def _clean(
    features: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    relations: Sequence[str] | np.ndarray,
    n_features: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    rel = np.asarray(relations, dtype=object)
    if x.ndim != 2 or x.shape[1] != n_features or len(y) != len(x) or len(rel) != len(x):
        raise ValueError(
            f"features {x.shape}, labels {y.shape}, relations {rel.shape} and "
            f"{n_features} feature names do not match"
        )
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        logger.warning("stacker: ignoring %d rows with non-finite features", int((~finite).sum()))
    return x[finite], y[finite], rel[finite]
