"""Verification: every candidate triple gets a schema check, a KGE probability (or an explicit
`unverified_new_entity` status when the KGE never saw one of its entities) and one confidence;
the confidence decides accept / review / reject.

The stage returns every candidate, annotated, in `kept` (nothing is dropped: rejected triples
are exported with their decision), and one `Rejection` per rejected triple for the report.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field

import numpy as np

from kgenrich.kg.calibrate import (
    Calibrator,
    accuracy,
    brier_score,
    type_consistent_corruptions,
)
from kgenrich.kg.features import FEATURE_NAMES, GraphFeatures
from kgenrich.kg.kge import KGEModel, train_verifier
from kgenrich.kg.records import Decision, Ontology, Rejection, SourceKind, StageResult, StageStats, Triple
from kgenrich.kg.stack import KGE_FEATURE_NAMES, StackedClassifier, kge_features
from kgenrich.errors import ConfigError
from kgenrich.pipeline.confidence import ConfidenceFeatures, ConfidenceModel, features_from_triple

logger = logging.getLogger(__name__)

STAGE = "verify"

#: Maps raw KGE scores (with their triples' keys) to probabilities of being true.
ProbabilityFn = Callable[[np.ndarray, Sequence[tuple[str, str, str]]], np.ndarray]
#: Which (head, relation, tail) the KGE model has embeddings for.
KnowsFn = Callable[[str, str, str], bool]
ScoreFn = Callable[[Sequence[tuple[str, str, str]]], np.ndarray]


def type_problem(
    triple: Triple, *, ontology: Ontology, entity_types: Mapping[str, str]
) -> str | None:
    """Why the triple breaks the schema, or None."""
    rel = ontology.relation(triple.relation)
    if rel is None:
        return "relation not in ontology"
    head_type = entity_types.get(triple.head)
    tail_type = entity_types.get(triple.tail)
    if head_type != rel.domain:
        return f"head type {head_type} is not {rel.domain}"
    if tail_type != rel.range:
        return f"tail type {tail_type} is not {rel.range}"
    return None


def combine_confidence(
    *, kge_probability: float | None, agreement: float, evidence: bool
) -> float:
    """One confidence from the available signals (the default combiner).

    - Extracted triples (their evidence span was found in the item's text): the mean of 1.0 for
      the evidence and the KGE probability, since text is strong support.
    - Completed triples (model knowledge, no evidence): the KGE probability times the LLM's
      agreement across its k samples. A product, not a mean: measured on MovieLens-100K with
      k=1 (bench/enrichment_value.py), a mean accepted 44 of 64 invented directors because
      agreement alone contributed 0.5.
    - Without a KGE probability (an entity the model never saw) the confidence is capped at
      0.5 x the other signals, so such a triple can reach review but never auto-acceptance.
    """
    if kge_probability is None or math.isnan(kge_probability):
        return 0.5 * (1.0 if evidence else agreement)
    if evidence:
        return 0.5 * (1.0 + kge_probability)
    return kge_probability * agreement


@dataclass(frozen=True)
class Combiner:
    """How a candidate's signals become one confidence, and where the decisions fall.

    ``model`` None is the rule of ``combine_confidence``; otherwise the fitted logistic
    ``ConfidenceModel`` (``pipeline.confidence``). Accept at ``accept_at`` or above, review
    from ``review_from`` up to it, reject below. A triple with an entity the KGE never saw is
    never auto-accepted, whatever its confidence: it goes to review or stays
    ``unverified_new_entity``.
    """

    model: ConfidenceModel | None
    accept_at: float
    review_from: float
    name: str

    @classmethod
    def rule(cls, review_band: tuple[float, float]) -> Combiner:
        return cls(model=None, accept_at=review_band[1], review_from=review_band[0], name="rule")


@dataclass(frozen=True)
class Context:
    """What verification knows beyond the triple itself (all optional)."""

    #: (head, relation) -> the tails the catalog itself gives for that relation
    catalog_tails: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    #: entities in the graph before this run (seed + catalog); None: unknown, no new-entity flag
    known_entities: Set[str] | None = None
    #: text-fallback P(true) per triple key (NaN when it cannot say), for KGE-unseen triples
    fallback: ScoreFn | None = None


def _features(
    t: Triple, *, kge_p: float | None, fallback_p: float | None, context: Context
) -> ConfidenceFeatures:
    tails = context.catalog_tails.get((t.head, t.relation))
    return features_from_triple(
        t,
        kge_probability=kge_p,
        fallback_probability=fallback_p,
        catalog_agrees=None if tails is None else t.tail in tails,
        new_entity=(context.known_entities is not None and t.tail not in context.known_entities),
    )


def _confidences(
    rows: Sequence[tuple[ConfidenceFeatures, bool]], *, combiner: Combiner
) -> list[float]:
    """One confidence per (features, evidence found) row; the model scores all rows at once."""
    if combiner.model is not None:
        return [float(x) for x in combiner.model.predict([f for f, _ in rows])]
    out = []
    for f, evidence in rows:
        if f.kge_probability is None and f.fallback_probability is not None:
            # the rule's cap for unseen entities, scaled by what the text fallback thinks
            out.append(0.5 * f.fallback_probability * (1.0 if evidence else f.agreement))
        else:
            out.append(combine_confidence(
                kge_probability=f.kge_probability, agreement=f.agreement, evidence=evidence))
    return out


def verify_triples(
    candidates: Sequence[Triple],
    *,
    ontology: Ontology,
    entity_types: Mapping[str, str],
    knows: KnowsFn,
    score: ScoreFn,
    probability: ProbabilityFn,
    review_band: tuple[float, float],
    verifier_name: str,
    combiner: Combiner | None = None,
    context: Context | None = None,
) -> StageResult[Triple]:
    """Annotate each candidate with scores and a decision (see module docstring).

    ``combiner`` defaults to the rule with ``review_band``; ``context`` adds catalog agreement,
    the new-entity flag and the text fallback for KGE-unseen triples.
    """
    start = time.perf_counter()
    comb = combiner or Combiner.rule(review_band)
    ctx = context or Context()
    low, high = comb.review_from, comb.accept_at
    schema_ok: list[Triple] = []
    out: list[Triple] = []
    rejected: list[Rejection] = []
    for t in candidates:
        problem = type_problem(t, ontology=ontology, entity_types=entity_types)
        if problem is None:
            schema_ok.append(t)
            continue
        out.append(t.with_provenance(decision=Decision.REJECTED, reason=problem,
                                     accepted_by=verifier_name))
        rejected.append(Rejection(stage=STAGE, reason="schema: " + problem.split(" is ")[0],
                                  item_id=t.provenance.item_id, detail=f"{t.key}"))
    known = [t for t in schema_ok if knows(*t.key)]
    probs: dict[tuple[str, str, str], float] = {}
    raws: dict[tuple[str, str, str], float] = {}
    if known:
        raw = score([t.key for t in known])
        p = probability(raw, [t.key for t in known])
        probs = {t.key: float(x) for t, x in zip(known, p, strict=True)}
        raws = {t.key: float(x) for t, x in zip(known, raw, strict=True)}
    unseen = [t for t in schema_ok if t.key not in probs]
    fallback: dict[tuple[str, str, str], float] = {}
    if unseen and ctx.fallback is not None:
        fb = ctx.fallback([t.key for t in unseen])
        fallback = {t.key: float(x) for t, x in zip(unseen, fb, strict=True) if math.isfinite(x)}
    rows = [
        (_features(t, kge_p=probs.get(t.key), fallback_p=fallback.get(t.key), context=ctx),
         t.provenance.source is SourceKind.EXTRACTED and bool(t.provenance.evidence))
        for t in schema_ok
    ]
    for t, conf in zip(schema_ok, _confidences(rows, combiner=comb), strict=True):
        prov = t.provenance
        kge_p = probs.get(t.key)
        fb_p = fallback.get(t.key)
        scores = dict(prov.scores) | {"confidence": conf}
        if kge_p is not None:
            scores |= {"kge": raws[t.key], "kge_probability": kge_p}
        if fb_p is not None:
            scores |= {"fallback_probability": fb_p}
        if kge_p is None:
            decision, reason = Decision.UNVERIFIED_NEW_ENTITY, "KGE never saw an entity"
            if conf >= low:
                decision, reason = Decision.REVIEW, "unseen entity; confidence in review band"
        elif conf >= high:
            decision, reason = Decision.ACCEPTED, f"confidence {conf:.2f} >= {high:.2f}"
        elif conf >= low:
            decision, reason = Decision.REVIEW, f"confidence {conf:.2f} in review band"
        else:
            decision, reason = Decision.REJECTED, f"confidence {conf:.2f} < {low:.2f}"
            rejected.append(Rejection(stage=STAGE, reason="low confidence",
                                      item_id=prov.item_id, detail=f"{t.key}"))
        out.append(t.with_provenance(scores=scores, decision=decision,
                                     reason=f"{reason} ({comb.name})",
                                     accepted_by=verifier_name))
    return StageResult(kept=tuple(out), rejected=tuple(rejected),
                       stats=StageStats(seconds=time.perf_counter() - start))


@dataclass(frozen=True)
class FittedVerifier:
    """A KGE model trained on trusted triples, plus what turns its scores into P(true).

    With ``stacker`` (``verify.kge_scorer = "stacked"``) the probability comes from the stacked
    classifier over the KGE's scores and ranks and the training graph's features
    (``kg/stack.py``, ``kg/features.py``); otherwise from the per-relation ``calibrator``.
    """

    kge: KGEModel
    calibrator: Calibrator
    metrics: Mapping[str, float]
    name: str
    stacker: StackedClassifier | None = None
    graph: GraphFeatures | None = None

    def knows(self, head: str, relation: str, tail: str) -> bool:
        return self.kge.knows(head, relation, tail)

    def score(self, triples: Sequence[tuple[str, str, str]]) -> np.ndarray:
        return self.kge.score(list(triples))

    def probability(
        self, scores: np.ndarray, triples: Sequence[tuple[str, str, str]]
    ) -> np.ndarray:
        """P(true) of known triples whose raw KGE ``scores`` are given."""
        if self.stacker is None or self.graph is None:
            relations = [r for _, r, _ in triples]
            return np.asarray(self.calibrator.probability(scores, relations), dtype=float)
        rows = list(triples)
        x = np.hstack([kge_features(self.kge, rows, scores=scores), self.graph.features(rows)])
        return self.stacker.probability(x, [r for _, r, _ in rows])

    def summary(self) -> str:
        shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in self.metrics.items())
        return f"{self.name}: {shown}"


def split_holdout(
    keys: Sequence[tuple[str, str, str]], *, fraction: float, seed: int
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """Hold out about `fraction` of the triples, only ones whose head, relation and tail stay in
    the training part (a held-out triple the model cannot embed would calibrate nothing)."""
    rng = random.Random(seed)
    order = list(keys)
    rng.shuffle(order)
    degree: Counter[str] = Counter()
    rel_count: Counter[str] = Counter()
    for h, r, t in order:
        degree[h] += 1
        degree[t] += 1
        rel_count[r] += 1
    want = int(len(order) * fraction)
    train: list[tuple[str, str, str]] = []
    held: list[tuple[str, str, str]] = []
    for h, r, t in order:
        if (len(held) < want and degree[h] > 1 and degree[t] > 1 and rel_count[r] > 1
                and h != t):
            held.append((h, r, t))
            degree[h] -= 1
            degree[t] -= 1
            rel_count[r] -= 1
        else:
            train.append((h, r, t))
    return train, held


def fit_verifier(
    trusted_triples: Sequence[Triple],
    *,
    model: str,
    dim: int,
    epochs: int,
    seed: int,
    holdout: float,
    scorer: str = "stacked",
) -> FittedVerifier:
    """Train the KGE on trusted triples (minus a holdout) and calibrate it on the holdout against
    type-consistent corruptions (same relation, another tail of that relation).

    ``scorer="stacked"`` also fits the stacked classifier on the same holdout (KGE features plus
    graph features of the training part); it falls back to the calibrator, with a warning, when
    the holdout is too small for its cross-validation."""
    if scorer not in ("stacked", "calibrated"):
        raise ConfigError(f"verify.kge_scorer must be 'stacked' or 'calibrated', got {scorer!r}")
    start = time.perf_counter()
    keys = sorted({t.key for t in trusted_triples})
    if len(keys) < 20:
        raise ConfigError(f"verification needs at least 20 trusted triples, got {len(keys)}")
    train, held = split_holdout(keys, fraction=holdout, seed=seed)
    # A catalog graph is small: check early stopping every 10 epochs, so the validation ranking
    # (over every entity, both sides) does not dominate training time.
    kge = train_verifier(train, valid=held, model=model, dim=dim, epochs=epochs, seed=seed,
                         eval_every=10, patience=2)
    negatives = type_consistent_corruptions(held, known=keys, per_triple=1, seed=seed).negatives
    cal_triples = [*held, *negatives]
    labels = np.array([1] * len(held) + [0] * len(negatives))
    scores = kge.score(cal_triples)
    relations = [r for _, r, _ in cal_triples]
    calibrator = Calibrator.fit(scores, labels, relations, seed=seed)
    probs = calibrator.probability(scores, relations)
    decided = calibrator.decide(scores, relations)
    metrics = {
        "train triples": float(len(train)),
        "holdout positives": float(len(held)),
        "holdout accuracy": accuracy(labels, decided),
        "holdout brier": brier_score(probs, labels),
    }
    stacker, graph = None, None
    if scorer == "stacked":
        graph = GraphFeatures.fit(train)
        features = np.hstack(
            [kge_features(kge, cal_triples, scores=scores), graph.features(cal_triples)]
        )
        try:
            stacker = StackedClassifier.fit(
                features, labels, relations, feature_names=[*KGE_FEATURE_NAMES, *FEATURE_NAMES]
            )
        except ValueError as error:
            logger.warning("stacked verifier not fitted (%s); using the calibrator", error)
            graph = None
        else:
            # out of fold: in-sample accuracy would flatter the stacker's many weights
            metrics["stacked holdout accuracy (5-fold CV)"] = stacker.cv_accuracy
            metrics["stacked holdout ECE (5-fold CV)"] = stacker.cv_ece
    metrics["seconds"] = time.perf_counter() - start
    logger.info("verifier %s: %s", model, metrics)
    name = f"kge:{model}" + ("+stacked" if stacker is not None else "")
    return FittedVerifier(kge=kge, calibrator=calibrator, metrics=metrics, name=name,
                          stacker=stacker, graph=graph)


def verify_context(base: Sequence[Triple]) -> Context:
    """Catalog tails per (head, relation) and the entities known before this run's candidates."""
    tails: dict[tuple[str, str], set[str]] = {}
    known: set[str] = set()
    for t in base:
        known.update((t.head, t.tail))
        if t.provenance.source is SourceKind.CATALOG:
            tails.setdefault((t.head, t.relation), set()).add(t.tail)
    return Context(catalog_tails={k: frozenset(v) for k, v in tails.items()},
                   known_entities=frozenset(known))


def text_fallback(
    trusted_triples: Sequence[Triple], *, labels: Mapping[str, str], seed: int
) -> ScoreFn:
    """The text fallback (``kg.fallback``) fitted on the trusted graph with entity labels as
    texts, as a ``ScoreFn`` (NaN where it cannot say). Loads the bundled sentence encoder."""
    from kgenrich.kg.fallback import FallbackScorer, entity_text  # local: imports sentence-transformers

    texts = {eid: entity_text(label=label) for eid, label in labels.items()}
    scorer = FallbackScorer.fit(sorted({t.key for t in trusted_triples}), texts=texts, seed=seed)

    def score(keys: Sequence[tuple[str, str, str]]) -> np.ndarray:
        return scorer.score(list(keys), texts=texts)

    return score
