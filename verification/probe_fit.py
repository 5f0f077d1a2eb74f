"""Per-relation thresholds from labelled calibration probes (`pipeline.probes`): where to accept
an LLM completion so that the accepted set keeps a stated precision, and P(correct) at a given
confidence.

The threshold is the lowest confidence at which the probes at or above it reach
``target_precision`` counting one extra wrong answer (``correct / (n + 1)``): with few probes a
lucky streak cannot claim 0.9 (9 of 9 right is needed, not 1 of 1). A relation whose probes
never reach it gets ``+inf``: nothing of it is auto-accepted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression


@dataclass(frozen=True)
class RelationCalibration:
    """What the probes of one relation say."""

    relation: str
    n: int  # labelled probe proposals the KGE could score
    correct: int
    #: accept a completion of this relation when its confidence is at least this (+inf: never)
    accept_at: float
    #: the probes' pessimistic precision at ``accept_at`` (NaN when unreachable)
    precision: float
    #: probes at or above ``accept_at``, and how many of them are right
    accepted: int
    accepted_correct: int
    #: isotonic P(correct | confidence) as (confidence, probability) knots
    knots: tuple[tuple[float, float], ...]

    def probability(self, confidence: float) -> float:
        """P(correct) at ``confidence`` by the probes' isotonic fit (clipped at its ends)."""
        if not self.knots:
            return float("nan")
        xs = [k[0] for k in self.knots]
        ys = [k[1] for k in self.knots]
        return float(np.interp(confidence, xs, ys))

    def summary(self) -> dict[str, object]:
        return {"probes": self.n, "correct": self.correct,
                "accept_at": None if math.isinf(self.accept_at) else round(self.accept_at, 4),
                "precision_at_threshold": None if math.isnan(self.precision)
                else round(self.precision, 3),
                "probes_accepted": self.accepted, "probes_accepted_correct": self.accepted_correct}


def pessimistic_threshold(
    scored: Iterable[tuple[float, bool]], *, target_precision: float,
) -> tuple[float, float, int, int]:
    """(threshold, precision, accepted, accepted correct) for (confidence, correct) pairs; see
    the module docstring. Ties share a fate: a threshold accepts every probe at its value."""
    pairs = sorted(scored, key=lambda p: -p[0])
    best = (math.inf, math.nan, 0, 0)
    n = right = 0
    i = 0
    while i < len(pairs):
        conf = pairs[i][0]
        while i < len(pairs) and pairs[i][0] == conf:
            n += 1
            right += int(pairs[i][1])
            i += 1
        precision = right / (n + 1)
        if precision >= target_precision and conf > 0:
            best = (conf, precision, n, right)
    return best


def fit_probe_calibration(
    rows: Iterable[tuple[str, float, bool]], *, target_precision: float, min_probes: int,
) -> dict[str, RelationCalibration]:
    """Per relation with at least ``min_probes`` (relation, confidence, correct) rows."""
    by_rel: dict[str, list[tuple[float, bool]]] = {}
    for rel, conf, ok in rows:
        if math.isfinite(conf):
            by_rel.setdefault(rel, []).append((conf, ok))
    out: dict[str, RelationCalibration] = {}
    for rel, pairs in sorted(by_rel.items()):
        if len(pairs) < min_probes:
            continue
        threshold, precision, accepted, accepted_correct = pessimistic_threshold(
            pairs, target_precision=target_precision)
        out[rel] = RelationCalibration(
            relation=rel, n=len(pairs), correct=sum(ok for _, ok in pairs),
            accept_at=threshold, precision=precision, accepted=accepted,
            accepted_correct=accepted_correct, knots=_isotonic(pairs))
    return out


def _isotonic(pairs: list[tuple[float, bool]]) -> tuple[tuple[float, float], ...]:
    x = np.array([c for c, _ in pairs], dtype=np.float64)
    y = np.array([float(ok) for _, ok in pairs], dtype=np.float64)
    if np.unique(x).size < 2:
        return ((float(x[0]), float(y.mean())),)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(x, y)
    return tuple((float(a), float(b)) for a, b in
                 zip(iso.X_thresholds_, iso.y_thresholds_, strict=True))


def describe(calibration: Mapping[str, RelationCalibration]) -> str:
    """One line for the run report."""
    if not calibration:
        return "no relation had enough probes"
    parts = []
    for rel, c in calibration.items():
        at = "never" if math.isinf(c.accept_at) else f">= {c.accept_at:.3f}"
        parts.append(f"{rel}: {c.correct}/{c.n} probes right, accept {at}")
    return "; ".join(parts)
