"""Classification and calibration metrics of 0/1 labels against decisions or probabilities:
accuracy, F1, Brier score, reliability diagram and expected calibration error (ECE)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Equal-width bins over [0, 1]: how often triples with a given probability are true."""

    bin_edges: tuple[float, ...]
    counts: tuple[int, ...]
    #: mean predicted probability per bin (None for an empty bin)
    mean_probability: tuple[float | None, ...]
    #: fraction of true triples per bin (None for an empty bin)
    fraction_positive: tuple[float | None, ...]


def accuracy(labels: Sequence[int] | np.ndarray, predictions: Sequence[bool] | np.ndarray) -> float:
    """Share of predictions equal to the 0/1 labels."""
    y, p = _binary_pair(labels, predictions)
    return float((y == p).mean())


def f1(labels: Sequence[int] | np.ndarray, predictions: Sequence[bool] | np.ndarray) -> float:
    """F1 of the positive class (0.0 when nothing is predicted or nothing is positive)."""
    y, p = _binary_pair(labels, predictions)
    tp = int((y & p).sum())
    denominator = int(y.sum()) + int(p.sum())
    return 2.0 * tp / denominator if denominator else 0.0


def brier_score(
    probabilities: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> float:
    """Mean squared difference between probability and 0/1 label."""
    p, y = _probability_pair(probabilities, labels)
    return float(np.mean((p - y) ** 2))


def reliability_diagram(
    probabilities: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    n_bins: int = 10,
) -> ReliabilityDiagram:
    """Bin the probabilities of the positive class into ``n_bins`` equal-width bins."""
    p, y = _probability_pair(probabilities, labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # the right edge 1.0 belongs to the last bin
    index = np.clip(np.digitize(p, edges[1:-1], right=False), 0, n_bins - 1)
    counts: list[int] = []
    means: list[float | None] = []
    fractions: list[float | None] = []
    for b in range(n_bins):
        in_bin = index == b
        n = int(in_bin.sum())
        counts.append(n)
        means.append(float(p[in_bin].mean()) if n else None)
        fractions.append(float(y[in_bin].mean()) if n else None)
    return ReliabilityDiagram(
        bin_edges=tuple(float(e) for e in edges),
        counts=tuple(counts),
        mean_probability=tuple(means),
        fraction_positive=tuple(fractions),
    )


def expected_calibration_error(
    probabilities: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    n_bins: int = 10,
) -> float:
    """ECE over ``n_bins`` equal-width bins of P(true): sum_b n_b/N * |mean p_b - frac true_b|."""
    diagram = reliability_diagram(probabilities, labels, n_bins=n_bins)
    total = sum(diagram.counts)
    ece = 0.0
    for n, mean_p, frac in zip(
        diagram.counts, diagram.mean_probability, diagram.fraction_positive, strict=True
    ):
        if n and mean_p is not None and frac is not None:
            ece += n / total * abs(mean_p - frac)
    return ece


def _binary_pair(
    labels: Sequence[int] | np.ndarray, predictions: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(bool)
    p = np.asarray(predictions).astype(bool)
    if y.shape != p.shape or y.ndim != 1 or len(y) == 0:
        raise ValueError(
            f"labels {y.shape} and predictions {p.shape} must be equal, 1-D, non-empty"
        )
    return y, p


def _probability_pair(
    probabilities: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels).astype(float)
    if p.shape != y.shape or p.ndim != 1 or len(p) == 0:
        raise ValueError(
            f"probabilities {p.shape} and labels {y.shape} must be equal, 1-D, non-empty"
        )
    if not np.isfinite(p).all() or p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("probabilities must be finite and within [0, 1] (route NaN scores first)")
    return p, y
