"""Per-relation thresholds from labelled calibration probes (`pipeline.probes`): which signal to
accept an LLM completion on and from where, so that the accepted set keeps a stated precision,
and P(correct) at a given value of that signal.

The threshold is the lowest value at which the probes at or above it reach
``target_precision`` counting one extra wrong answer (``correct / (n + 1)``): with few probes a
lucky streak cannot claim 0.9 (9 of 9 right is needed, not 1 of 1). A relation whose probes
never reach it gets ``+inf``: nothing of it is auto-accepted.

Which signal: per relation, each of ``SIGNALS`` gets its threshold, and the one accepting the
most right probes wins (ties go to the earlier signal). Measured on MovieLens-100K
(bench/probe_signals.py) the flow's confidence (KGE probability x agreement) never reached 0.9
on genres while the KGE probability alone did: the embedded model's agreement across samples
says little about whether it is right. The choice and the threshold are then checked on probes
they were not fitted on: the probes' items are split in two halves by a hash of the item id,
the whole choice is redone on each half and applied to the other. Where those held-out
acceptances fall below the target precision the relation is not auto-accepted at all.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression

#: The signals a relation may be accepted on: the combiner's confidence, and the two it combines
#: for a completion (the KGE probability, the LLM's agreement across its samples).
SIGNALS = ("confidence", "kge_probability", "agreement")


@dataclass(frozen=True)
class ProbeLabel:
    """One labelled probe answer: its relation, the item it was asked for (the unit of the
    held-out split), its signals' values and whether its tail was a masked one."""

    relation: str
    item_id: str
    signals: Mapping[str, float]
    correct: bool


@dataclass(frozen=True)
class RelationCalibration:
    """What the probes of one relation say."""

    relation: str
    n: int  # labelled probe proposals the KGE could score
    correct: int
    #: accept a completion of this relation when its ``signal`` is at least this (+inf: never)
    accept_at: float
    #: the probes' pessimistic precision at ``accept_at`` (NaN when unreachable)
    precision: float
    #: probes at or above ``accept_at``, and how many of them are right
    accepted: int
    accepted_correct: int
    #: isotonic P(correct | signal) as (signal value, probability) knots
    knots: tuple[tuple[float, float], ...]
    #: the signal of ``SIGNALS`` the threshold and the knots are on
    signal: str = "confidence"
    #: the held-out check: probes accepted by the choice fitted on the other half, and how many
    #: of them are right
    held_out_accepted: int = 0
    held_out_correct: int = 0
    #: why nothing is auto-accepted when the held-out check overruled the threshold ("" if not)
    overruled: str = ""

    def value(self, *, confidence: float, kge_probability: float | None,
              agreement: float) -> float:
        """This relation's signal for a candidate (NaN without a KGE probability)."""
        if self.signal == "confidence":
            return confidence
        if self.signal == "agreement":
            return agreement
        return math.nan if kge_probability is None else kge_probability

    def probability(self, value: float) -> float:
        """P(correct) at ``value`` of the signal by the probes' isotonic fit (clipped at its
        ends)."""
        if not self.knots or math.isnan(value):
            return float("nan")
        xs = [k[0] for k in self.knots]
        ys = [k[1] for k in self.knots]
        return float(np.interp(value, xs, ys))

    def summary(self) -> dict[str, object]:
        return {"probes": self.n, "correct": self.correct, "signal": self.signal,
                "accept_at": None if math.isinf(self.accept_at) else round(self.accept_at, 4),
                "precision_at_threshold": None if math.isnan(self.precision)
                else round(self.precision, 3),
                "probes_accepted": self.accepted, "probes_accepted_correct": self.accepted_correct,
                "held_out_accepted": self.held_out_accepted,
                "held_out_correct": self.held_out_correct, "overruled": self.overruled or None}


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
    labels: Iterable[ProbeLabel], *, target_precision: float, min_probes: int,
    signals: Sequence[str] = SIGNALS,
) -> dict[str, RelationCalibration]:
    """Per relation with at least ``min_probes`` labels: the signal of ``signals``, its
    threshold and isotonic fit, and the held-out check (see the module docstring)."""
    unknown = sorted(set(signals) - set(SIGNALS))
    if unknown or not signals:
        raise ValueError(f"unknown probe signals {unknown or list(signals)}; "
                         f"choose from {list(SIGNALS)}")
    by_rel: dict[str, list[ProbeLabel]] = {}
    for label in labels:
        by_rel.setdefault(label.relation, []).append(label)
    out: dict[str, RelationCalibration] = {}
    for rel, rows in sorted(by_rel.items()):
        if len(rows) < min_probes:
            continue
        signal, (threshold, precision, accepted, accepted_correct) = _choose(
            rows, signals, target_precision)
        held_n = held_right = 0
        for half in (0, 1):
            train = [r for r in rows if _half(r.item_id) != half]
            test = [r for r in rows if _half(r.item_id) == half]
            sig, (at, *_) = _choose(train, signals, target_precision)
            hits = [r.correct for r in test if _value(r, sig) >= at]
            held_n += len(hits)
            held_right += sum(hits)
        overruled = ""
        if held_n and held_right / held_n < target_precision and math.isfinite(threshold):
            overruled = (f"held out, {held_right} of {held_n} accepted probes right "
                         f"(< {target_precision})")
            threshold, precision, accepted, accepted_correct = math.inf, math.nan, 0, 0
        pairs = [(_value(r, signal), r.correct) for r in rows if math.isfinite(_value(r, signal))]
        out[rel] = RelationCalibration(
            relation=rel, n=len(rows), correct=sum(r.correct for r in rows),
            accept_at=threshold, precision=precision, accepted=accepted,
            accepted_correct=accepted_correct, knots=_isotonic(pairs) if pairs else (),
            signal=signal, held_out_accepted=held_n, held_out_correct=held_right,
            overruled=overruled)
    return out


def _value(label: ProbeLabel, signal: str) -> float:
    v = label.signals.get(signal)
    return math.nan if v is None else float(v)


def _half(item_id: str) -> int:
    # a stable hash (not Python's salted one): the same probes split the same way every run
    return zlib.crc32(item_id.encode()) & 1


def _choose(
    rows: Sequence[ProbeLabel], signals: Sequence[str], target_precision: float,
) -> tuple[str, tuple[float, float, int, int]]:
    """The signal whose pessimistic threshold accepts the most right probes, with that
    threshold's (threshold, precision, accepted, accepted correct); ties keep the earlier."""
    best: tuple[str, tuple[float, float, int, int]] | None = None
    for sig in signals:
        pairs = [(v, r.correct) for r in rows if math.isfinite(v := _value(r, sig))]
        fit = pessimistic_threshold(pairs, target_precision=target_precision)
        if best is None or fit[3] > best[1][3]:
            best = (sig, fit)
    assert best is not None  # signals is not empty
    return best


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
        at = ("never" + (f" ({c.overruled})" if c.overruled else "")
              if math.isinf(c.accept_at) else f"at {c.signal} >= {c.accept_at:.3f}")
        held = (f", held out {c.held_out_correct}/{c.held_out_accepted}"
                if math.isfinite(c.accept_at) else "")
        parts.append(f"{rel}: {c.correct}/{c.n} probes right, accept {at}{held}")
    return "; ".join(parts)
