"""One confidence per candidate triple: a sign-constrained logistic regression over its signals.

Contract: ``ConfidenceFeatures`` in, P(triple is true) out. ``ConfidenceModel.fit`` learns the
weights from labelled candidates; ``DEFAULT_MODEL`` and ``DEFAULT_THRESHOLD`` are read from the
packaged ``default_confidence_model.json`` (fitted on MovieLens-100K completions with a known
answer key); ``candidate_confidence`` scores one candidate. A candidate that fails the
domain/range check gets 0.0: such triples never reach a fit (the schema check rejects them
first), so no learned weight could speak for them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import numpy as np

from kgenrich.kg.records import SourceKind, Triple
from kgenrich.verification.logistic import fit_bounded_logistic, sigmoid

_FORMAT_VERSION = 1
#: KGE / fallback probabilities are clipped to [EPS, 1 - EPS] before the logit, so a calibrator
#: that outputs exactly 0 or 1 (isotonic does) gives a finite, bounded feature.
_EPS = 0.01

#: Design columns, in order. Signs: +1 the weight is constrained to be >= 0 (more of the signal
#: can only raise the confidence), -1 constrained <= 0, 0 free.
FEATURES: tuple[tuple[str, int], ...] = (
    # logit of the calibrated KGE probability; 0 when the KGE cannot score the triple
    ("kge_logit", +1),
    # 1 when there is no KGE probability (an entity the KGE never saw): its own intercept shift
    ("kge_missing", 0),
    # logit of the text fallback's probability, used only when the KGE probability is missing
    ("fallback_logit", +1),
    # share of the k LLM samples that gave this tail; 0 when k == 1 (see the next column)
    ("agreement", +1),
    # 1 when there was a single sample: its agreement is 1.0 by construction and says nothing,
    # so it is treated as missing with its own intercept shift (like ``kge_missing``)
    ("single_sample", 0),
    # an extracted triple whose evidence span was found in the item's text
    ("evidence_found", +1),
    # an extracted triple without a span found in the text
    ("evidence_missing", 0),
    # a catalog attribute for this relation exists and contains the tail
    ("catalog_agrees", +1),
    # a catalog attribute for this relation exists and does not contain the tail
    ("catalog_disagrees", -1),
    # the tail is an entity the graph did not have before
    ("new_entity", 0),
)


@dataclass(frozen=True)
class ConfidenceFeatures:
    """Every signal the combiner reads for one candidate triple.

    ``None`` means "not available" and is handled explicitly by the model (a missing indicator
    or no contribution), never read as 0.
    """

    relation: str
    #: calibrated P(true) from the KGE verifier; None (or NaN) when it cannot score the triple
    kge_probability: float | None
    #: share of the k samples that gave this tail; with k == 1 it is always 1.0 and is ignored
    agreement: float
    samples: int = 1
    #: P(true) from the text fallback scorer (``verification.fallback``), used when the KGE has none
    fallback_probability: float | None = None
    #: True for extracted triples (from the item's text), False for LLM completions
    extracted: bool = False
    #: whether the evidence span was found in the item's text; only read for extracted triples
    evidence_found: bool = False
    #: domain/range check of the ontology passed
    type_ok: bool = True
    #: the catalog's own attribute for this relation contains the tail (True), does not (False),
    #: or the catalog has no such attribute for the item (None)
    catalog_agrees: bool | None = None
    #: the tail is a new entity (not in the graph before this run)
    new_entity: bool = False


def features_from_triple(
    triple: Triple,
    *,
    kge_probability: float | None,
    fallback_probability: float | None = None,
    type_ok: bool = True,
    catalog_agrees: bool | None = None,
    new_entity: bool = False,
) -> ConfidenceFeatures:
    """The features of a candidate ``Triple``: agreement, k and evidence from its provenance
    (``scores["agreement"]``, ``scores["samples"]``, ``source``, ``evidence``), the rest given."""
    prov = triple.provenance
    extracted = prov.source is SourceKind.EXTRACTED
    return ConfidenceFeatures(
        relation=triple.relation,
        kge_probability=kge_probability,
        agreement=float(prov.scores.get("agreement", 1.0)),
        samples=int(prov.scores.get("samples", 1)),
        fallback_probability=fallback_probability,
        extracted=extracted,
        evidence_found=extracted and bool(prov.evidence),
        type_ok=type_ok,
        catalog_agrees=catalog_agrees,
        new_entity=new_entity,
    )


@dataclass(frozen=True)
class ThresholdChoice:
    """The lowest confidence threshold whose accepted set reaches a target precision."""

    target_precision: float
    #: accept when confidence >= threshold; +inf when no threshold reaches the target
    threshold: float
    achieved: bool
    precision: float
    recall: float
    n_accepted: int
    n_positive: int


def _present(p: float | None) -> bool:
    return p is not None and math.isfinite(p)


def _logit(p: float) -> float:
    q = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(q / (1.0 - q))


def feature_row(f: ConfidenceFeatures) -> list[float]:
    """The design columns of ``FEATURES`` for one candidate (relation columns not included)."""
    has_kge = _present(f.kge_probability)
    use_fallback = not has_kge and _present(f.fallback_probability)
    # k == 1: the lone answer always "agrees" with itself; 1.0 would claim full consensus
    multi = f.samples > 1 and math.isfinite(f.agreement)
    return [
        _logit(float(f.kge_probability)) if has_kge else 0.0,  # type: ignore[arg-type]
        0.0 if has_kge else 1.0,
        _logit(float(f.fallback_probability)) if use_fallback else 0.0,  # type: ignore[arg-type]
        min(max(f.agreement, 0.0), 1.0) if multi else 0.0,
        0.0 if multi else 1.0,
        1.0 if f.extracted and f.evidence_found else 0.0,
        1.0 if f.extracted and not f.evidence_found else 0.0,
        1.0 if f.catalog_agrees is True else 0.0,
        1.0 if f.catalog_agrees is False else 0.0,
        1.0 if f.new_entity else 0.0,
    ]


@dataclass(frozen=True)
class ConfidenceModel:
    """Logistic regression with sign constraints: p = sigmoid(w . x + b_relation + b).

    ``relation_offsets`` shift the intercept for relations seen often enough in fitting (their
    base rates differ: one of many genres vs the one director); other relations get none.
    """

    weights: Mapping[str, float]
    intercept: float
    relation_offsets: Mapping[str, float] = field(default_factory=dict)
    #: the fit's own (probability, label) pairs; ``threshold_for_precision`` uses them
    fit_probabilities: tuple[float, ...] = ()
    fit_labels: tuple[int, ...] = ()
    #: where the weights came from (command, data, counts), for the run report
    source: Mapping[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------------------ fitting

    @classmethod
    def fit(
        cls,
        rows: Sequence[ConfidenceFeatures],
        labels: Sequence[int] | Sequence[bool] | np.ndarray,
        *,
        c: float = 1.0,
        min_relation_rows: int = 30,
        source: Mapping[str, Any] | None = None,
    ) -> ConfidenceModel:
        """Maximum-likelihood fit with an L2 penalty (strength 1 / ``c``) on the weights and the
        relation offsets; the shared intercept is free.

        Weights in ``FEATURES`` marked +1 / -1 are bounded to that sign (L-BFGS-B), so more
        agreement or a higher KGE probability can never lower the confidence. A column that is
        constant in ``rows`` (e.g. no extracted triples) gets weight 0: no data, no effect.
        Rows that fail the type check are dropped (they are scored 0.0 whatever the fit).
        """
        y_all = np.asarray(labels).astype(float)
        if len(rows) != len(y_all):
            raise ValueError(f"{len(rows)} rows but {len(y_all)} labels")
        keep = [i for i, r in enumerate(rows) if r.type_ok]
        rows = [rows[i] for i in keep]
        y = y_all[keep]
        if len(rows) < 2 or y.min() == y.max():
            raise ValueError("fitting needs at least one true and one false candidate")
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.relation] = counts.get(r.relation, 0) + 1
        relations = sorted(k for k, n in counts.items() if n >= min_relation_rows)
        # every frequent relation gets a penalized offset (no reference relation): the shared
        # intercept then stands for "a relation like these", which is what an unseen relation
        # gets, instead of the base rate of whichever relation happened to sort last
        offset_relations = relations
        x = _design(rows, relations=offset_relations)
        n_feat = len(FEATURES)
        bounds: list[tuple[float | None, float | None]] = []
        for name, sign in FEATURES:
            col = x[:, [n for n, _ in FEATURES].index(name)]
            if np.ptp(col) == 0.0:
                # constant (e.g. never an extracted triple, or k == 1 throughout): the data say
                # nothing about this signal, so it keeps no weight rather than an arbitrary one
                bounds.append((0.0, 0.0))
            elif sign > 0:
                bounds.append((0.0, None))
            elif sign < 0:
                bounds.append((None, 0.0))
            else:
                bounds.append((None, None))
        bounds += [(None, None)] * (len(offset_relations) + 1)  # relation offsets, intercept
        # relation offsets are penalized like the weights: a relation whose candidates are all
        # false (or all true) would otherwise drive its offset to infinity
        theta = fit_bounded_logistic(
            x, y, bounds=bounds, l2=1.0 / c, n_penalized=n_feat + len(offset_relations)
        )
        model = cls(
            weights={name: float(theta[i]) for i, (name, _) in enumerate(FEATURES)},
            intercept=float(theta[-1]),
            relation_offsets={r: float(theta[n_feat + j]) for j, r in enumerate(offset_relations)},
            source=dict(source or {}),
        )
        p = model.predict(rows)
        return cls(
            weights=model.weights,
            intercept=model.intercept,
            relation_offsets=model.relation_offsets,
            fit_probabilities=tuple(float(v) for v in p),
            fit_labels=tuple(int(v) for v in y),
            source=model.source,
        )

    # ---------------------------------------------------------------------------- scoring

    def logits(self, rows: Sequence[ConfidenceFeatures]) -> np.ndarray:
        """w . x + offsets + b per row (type failures included; see ``predict``)."""
        if not rows:
            return np.zeros(0, dtype=np.float64)
        x = _design(rows, relations=())
        w = np.array([self.weights.get(name, 0.0) for name, _ in FEATURES], dtype=np.float64)
        offsets = np.array([self.relation_offsets.get(r.relation, 0.0) for r in rows])
        return np.asarray(x @ w + offsets + self.intercept, dtype=np.float64)

    def predict(self, rows: Sequence[ConfidenceFeatures]) -> np.ndarray:
        """P(true) per row; exactly 0.0 for a row that fails the domain/range check."""
        p = sigmoid(self.logits(rows))
        type_ok = np.fromiter((r.type_ok for r in rows), dtype=bool, count=len(rows))
        p[~type_ok] = 0.0
        return p

    def threshold_for_precision(
        self,
        target: float,
        *,
        rows: Sequence[ConfidenceFeatures] | None = None,
        labels: Sequence[int] | Sequence[bool] | np.ndarray | None = None,
    ) -> ThresholdChoice:
        """The lowest threshold whose accepted set has precision >= ``target`` (max recall).

        On the fit data unless ``rows`` and ``labels`` are given.
        """
        if rows is None:
            if not self.fit_probabilities:
                raise ValueError("no fit data stored: pass rows and labels")
            p = np.asarray(self.fit_probabilities, dtype=np.float64)
            y = np.asarray(self.fit_labels, dtype=bool)
        else:
            if labels is None:
                raise ValueError("rows given without labels")
            p = self.predict(rows)
            y = np.asarray(labels).astype(bool)
        return threshold_for_precision(p, y, target)

    # ------------------------------------------------------------------------ persistence

    def to_json(self) -> str:
        """JSON text; ``from_json`` restores an identical model."""
        payload = {
            "format_version": _FORMAT_VERSION,
            "features": [name for name, _ in FEATURES],
            "weights": dict(self.weights),
            "intercept": self.intercept,
            "relation_offsets": dict(self.relation_offsets),
            "fit_probabilities": list(self.fit_probabilities),
            "fit_labels": list(self.fit_labels),
            "source": dict(self.source),
        }
        return json.dumps(payload, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ConfidenceModel:
        data = json.loads(text)
        if data.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"unsupported confidence model format {data.get('format_version')!r}")
        unknown = set(data["weights"]) - {name for name, _ in FEATURES}
        if unknown:
            raise ValueError(f"confidence model has weights for unknown features {sorted(unknown)}")
        return cls(
            weights={str(k): float(v) for k, v in data["weights"].items()},
            intercept=float(data["intercept"]),
            relation_offsets={str(k): float(v) for k, v in data["relation_offsets"].items()},
            fit_probabilities=tuple(float(v) for v in data["fit_probabilities"]),
            fit_labels=tuple(int(v) for v in data["fit_labels"]),
            source=dict(data.get("source", {})),
        )


def threshold_for_precision(
    probabilities: np.ndarray, labels: np.ndarray, target: float
) -> ThresholdChoice:
    """Lowest t with precision(p >= t) >= target; ties in p are accepted or rejected together."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos = int(y.sum())
    order = np.argsort(-p, kind="stable")
    p_desc, y_desc = p[order], y[order]
    tp = np.cumsum(y_desc)
    n_acc = np.arange(1, len(p) + 1)
    # a cut after position i is only realizable where the next score is strictly lower
    cut = np.ones(len(p), dtype=bool)
    cut[:-1] = p_desc[:-1] > p_desc[1:]
    ok = np.flatnonzero(cut & (tp / n_acc >= target))
    if len(ok) == 0:
        return ThresholdChoice(target, math.inf, False, math.nan, 0.0, 0, n_pos)
    i = int(ok[-1])
    return ThresholdChoice(
        target_precision=target,
        threshold=float(p_desc[i]),
        achieved=True,
        precision=float(tp[i] / n_acc[i]),
        recall=float(tp[i] / n_pos) if n_pos else math.nan,
        n_accepted=int(n_acc[i]),
        n_positive=n_pos,
    )


def _design(rows: Sequence[ConfidenceFeatures], *, relations: Sequence[str]) -> np.ndarray:
    base = np.array([feature_row(r) for r in rows], dtype=float)
    if not relations:
        return base
    index = {r: j for j, r in enumerate(relations)}
    onehot = np.zeros((len(rows), len(relations)))
    for i, r in enumerate(rows):
        if r.relation in index:
            onehot[i, index[r.relation]] = 1.0
    return np.hstack([base, onehot])


# ------------------------------------------------------------------------------ default model

#: Fitted, not chosen: ``ConfidenceModel.fit`` (c=1.0) on 943 MovieLens-100K completion
#: candidates of 250 items (119 in the answer key; embedded Qwen2.5-Coder-1.5B, k=3, hidden
#: ``imdb_auxiliary.txt`` groups; KGE probabilities from the stacked verifier,
#: ``verify.kge_scorer = "stacked"``; candidates from ``bench/enrichment_value.py --skip-recsys
#: --samples 3 --max-items 250 --starring-items 40``), by the command in its ``source``. The
#: packaged JSON is that command's ``--model-out`` file (``reports/confidence_default_model.json``
#: is the same) plus ``accept_at``. Signals: the catalog's own genre (strongest), agreement
#: across the k samples, a weak KGE logit; no extracted triples or fallback scores in this data,
#: so ``evidence_*`` and ``fallback_logit`` are 0 by construction. Refit on your own labelled
#: candidates (``ConfidenceModel.fit``, or review verdicts: ``verification.combiner``) before
#: trusting it for another catalog.
_DEFAULT_FILE = "default_confidence_model.json"
_default_text = files("kgenrich.verification").joinpath(_DEFAULT_FILE).read_text(encoding="utf-8")
DEFAULT_MODEL = ConfidenceModel.from_json(_default_text)
#: The accept threshold (``accept_at`` in the same file), chosen by grouped 5-fold
#: cross-validation (5 repeats) of "fit, then accept at the lowest threshold reaching target T
#: on the fit folds": T = 0.85 gives held-out precision 0.861 at recall 0.637 of the true
#: candidates, T = 0.9 only 0.798 at 0.176 (its threshold lands inside the noise above the
#: catalog-agreement block), so the T = 0.85 threshold of the final model is shipped (in-sample
#: precision 0.854, recall 0.639, 89 of 943 accepted). Precision 0.9 is not reached out of
#: sample on this data; see reports/verify.md.
DEFAULT_THRESHOLD = float(json.loads(_default_text)["accept_at"])


def candidate_confidence(
    features: ConfidenceFeatures, *, model: ConfidenceModel | None = None
) -> float:
    """P(candidate is true) from ``model`` (default: ``DEFAULT_MODEL``); 0.0 on a type failure.

    Accept at ``DEFAULT_THRESHOLD`` or above for the default model's precision target.
    """
    return float((model or DEFAULT_MODEL).predict([features])[0])
