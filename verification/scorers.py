"""Scorers: what turns a candidate triple into P(true), fitted on the trusted graph and chosen
by name from ``SCORERS`` ("stacked", "calibrated", "text").

Contract: ``fit_scorer(name, trusted_keys, settings=..., labels=...)`` returns a ``Scorer``;
``knows(h, r, t)`` says whether it can score a triple at all, ``scores(keys)`` gives P(true)
(NaN where it cannot say) and, for KGE scorers, the raw KGE score it came from.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal, Protocol, overload

import numpy as np

from kgenrich.errors import ConfigError
from kgenrich.settings import VerifySettings
from kgenrich.verification.calibrate import Calibrator
from kgenrich.verification.fallback import FallbackScorer, entity_text
from kgenrich.verification.features import FEATURE_NAMES, GraphFeatures
from kgenrich.verification.kge import KGEModel, train_verifier
from kgenrich.verification.metrics import accuracy, brier_score
from kgenrich.verification.negatives import tail_corruptions
from kgenrich.verification.stack import (
    DEFAULT_C_GRID,
    KGE_FEATURE_NAMES,
    StackedClassifier,
    kge_features,
)
from kgenrich.verification.triples import LabeledTriple

logger = logging.getLogger(__name__)
#: Fewest distinct trusted triples a KGE verifier is fitted on (a holdout split needs some).
MIN_TRUSTED = 20


@dataclass(frozen=True)
class TripleScores:
    """P(true) per triple, plus the raw KGE score it came from (None: no KGE behind it)."""

    probability: np.ndarray
    kge: np.ndarray | None = None


@dataclass(frozen=True)
class Holdout:
    """A fitted scorer's P(true) on its holdout (held-out trusted triples and their
    corruptions) with the 0/1 labels, for the report's reliability diagram."""

    probability: tuple[float, ...]
    labels: tuple[int, ...]
    #: what gave the probabilities, as the report names it
    source: str


class Scorer(Protocol):
    """A fitted scorer, as verification uses it."""

    @property
    def name(self) -> str: ...

    @property
    def metrics(self) -> Mapping[str, float]:
        """What the fit measured (sizes, holdout accuracy, seconds), for reports."""
        ...

    @property
    def holdout(self) -> Holdout | None:
        """P(true) and labels on the holdout it was fitted with (None: it keeps none)."""
        ...

    def knows(self, head: str, relation: str, tail: str) -> bool:
        """Whether ``scores`` can say anything about this triple."""
        ...

    def scores(self, keys: Sequence[LabeledTriple]) -> TripleScores:
        """P(true) (and the raw KGE score, if any) per triple, computed once."""
        ...

    def probability(self, keys: Sequence[LabeledTriple]) -> np.ndarray:
        """P(true) per triple; NaN where it cannot say."""
        ...

    def summary(self) -> str:
        """One line for the run report."""
        ...


class FitScorer(Protocol):
    """How a scorer is fitted: trusted keys, the verify settings, entity id -> label, and the
    previous fit to warm-start from (scorers without a KGE ignore it and fit afresh)."""

    def __call__(
        self, keys: Sequence[LabeledTriple], *, settings: VerifySettings,
        labels: Mapping[str, str], previous: Scorer | None = None,
    ) -> Scorer: ...


def warm_start_model(scorer: Scorer | None) -> KGEModel | None:
    """The KGE a new fit can warm-start from: ``scorer``'s, when it has one."""
    kge = getattr(scorer, "kge", None)
    return kge if isinstance(kge, KGEModel) else None


@dataclass(frozen=True)
class CalibratedScorer:
    """A KGE model trained on trusted triples and a per-relation ``Calibrator`` of its score."""

    kge: KGEModel
    calibrator: Calibrator
    metrics: Mapping[str, float]
    name: str
    holdout: Holdout | None = None

    def knows(self, head: str, relation: str, tail: str) -> bool:
        return self.kge.knows(head, relation, tail)

    def scores(self, keys: Sequence[LabeledTriple]) -> TripleScores:
        raw = self.kge.score(list(keys))
        relations = [r for _, r, _ in keys]
        return TripleScores(
            probability=np.asarray(self.calibrator.probability(raw, relations), dtype=float),
            kge=raw,
        )

    def probability(self, keys: Sequence[LabeledTriple]) -> np.ndarray:
        return self.scores(keys).probability

    def summary(self) -> str:
        return _summary(self.name, self.metrics)

    @classmethod
    def fit(
        cls, keys: Sequence[LabeledTriple], *, settings: VerifySettings,
        labels: Mapping[str, str], previous: Scorer | None = None,
    ) -> CalibratedScorer:
        """Train the KGE on ``keys`` minus a holdout (warm-started from ``previous``'s KGE when
        there is one) and calibrate it on the holdout against type-consistent corruptions
        (same relation, another tail of that relation)."""
        del labels  # the KGE reads the graph only
        return _fit_kge(keys, settings=settings, stacked=False,
                        previous=warm_start_model(previous))


@dataclass(frozen=True)
class StackedScorer:
    """The KGE of a ``CalibratedScorer`` plus a ``StackedClassifier`` over its scores and ranks
    and the training graph's features (``stack.py``, ``features.py``)."""

    kge: KGEModel
    calibrator: Calibrator
    stacker: StackedClassifier
    graph: GraphFeatures
    metrics: Mapping[str, float]
    name: str
    holdout: Holdout | None = None

    def knows(self, head: str, relation: str, tail: str) -> bool:
        return self.kge.knows(head, relation, tail)

    def scores(self, keys: Sequence[LabeledTriple]) -> TripleScores:
        rows = list(keys)
        raw = self.kge.score(rows)
        x = np.hstack([kge_features(self.kge, rows, scores=raw), self.graph.features(rows)])
        return TripleScores(
            probability=self.stacker.probability(x, [r for _, r, _ in rows]), kge=raw
        )

    def probability(self, keys: Sequence[LabeledTriple]) -> np.ndarray:
        return self.scores(keys).probability

    def summary(self) -> str:
        return _summary(self.name, self.metrics)

    @classmethod
    def fit(
        cls, keys: Sequence[LabeledTriple], *, settings: VerifySettings,
        labels: Mapping[str, str], previous: Scorer | None = None,
    ) -> StackedScorer | CalibratedScorer:
        """``CalibratedScorer.fit``, then the stacked classifier on the same holdout (KGE
        features plus graph features of the training part). Returns the calibrated scorer, with
        a warning, when the holdout is too small for the stacker's cross-validation."""
        del labels
        # a warm start keeps the previous stacker's C: the grid search is most of a small
        # graph's fit (31 logistic fits of 36), and a 10%-changed graph does not move it much
        c = previous.stacker.c if isinstance(previous, StackedScorer) else None
        return _fit_kge(keys, settings=settings, stacked=True,
                        previous=warm_start_model(previous), stack_c=c)


class TextFallbackScorer:
    """The text fallback (``fallback.py``) fitted on the trusted graph with entity labels as
    texts, for triples with an entity the KGE never saw."""

    def __init__(self, fallback: FallbackScorer, texts: Mapping[str, str]) -> None:
        self.fallback = fallback
        self.texts = dict(texts)
        self.name = "text-fallback"
        self.holdout: Holdout | None = None
        self.metrics = {k: float(v) for k, v in dataclasses.asdict(fallback.report).items()}

    def knows(self, head: str, relation: str, tail: str) -> bool:
        return (self.fallback.knows_relation(relation)
                and bool(self.texts.get(head, "").strip())
                and bool(self.texts.get(tail, "").strip()))

    def scores(self, keys: Sequence[LabeledTriple]) -> TripleScores:
        return TripleScores(probability=self.fallback.score(list(keys), texts=self.texts))

    def probability(self, keys: Sequence[LabeledTriple]) -> np.ndarray:
        return self.scores(keys).probability

    def summary(self) -> str:
        return _summary(self.name, self.metrics)

    @classmethod
    def fit(
        cls, keys: Sequence[LabeledTriple], *, settings: VerifySettings,
        labels: Mapping[str, str], previous: Scorer | None = None,
    ) -> TextFallbackScorer:
        """Fit on ``keys`` with ``labels`` (entity id -> label) as texts; loads the bundled
        sentence encoder. Always fits afresh (``previous`` is ignored: it takes seconds)."""
        del previous
        texts = {eid: entity_text(label=label) for eid, label in labels.items()}
        fallback = FallbackScorer.fit(sorted(set(keys)), texts=texts, seed=settings.seed)
        return cls(fallback, texts)


@dataclass(frozen=True)
class FunctionScorer:
    """A scorer made of plain functions, for tests and benchmarks without a fitted model."""

    name: str
    knows_fn: Callable[[str, str, str], bool]
    probability_fn: Callable[[Sequence[LabeledTriple]], np.ndarray]
    #: raw KGE scores to record next to the probability (None: none)
    kge_fn: Callable[[Sequence[LabeledTriple]], np.ndarray] | None = None
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    holdout: Holdout | None = None

    def knows(self, head: str, relation: str, tail: str) -> bool:
        return self.knows_fn(head, relation, tail)

    def scores(self, keys: Sequence[LabeledTriple]) -> TripleScores:
        kge = None if self.kge_fn is None else self.kge_fn(keys)
        return TripleScores(probability=self.probability_fn(keys), kge=kge)

    def probability(self, keys: Sequence[LabeledTriple]) -> np.ndarray:
        return self.probability_fn(keys)

    def summary(self) -> str:
        return _summary(self.name, self.metrics)


#: Every scorer by name; ``verify.kge_scorer`` names the KGE one, "text" is the fallback.
SCORERS: dict[str, FitScorer] = {
    "stacked": StackedScorer.fit,
    "calibrated": CalibratedScorer.fit,
    "text": TextFallbackScorer.fit,
}


def fit_scorer(
    name: str, keys: Sequence[LabeledTriple], *, settings: VerifySettings,
    labels: Mapping[str, str], previous: Scorer | None = None,
) -> Scorer:
    """Fit the scorer ``name`` of ``SCORERS`` on the trusted ``keys`` (warm-started from
    ``previous``, a fit on a slightly different graph, where the scorer can); ``ConfigError``
    (naming the choices) for an unknown name."""
    try:
        fit = SCORERS[name]
    except KeyError:
        raise ConfigError(
            f"verify.kge_scorer: unknown scorer {name!r}; choose one of {sorted(SCORERS)}"
        ) from None
    return fit(keys, settings=settings, labels=labels, previous=previous)


def split_holdout(
    keys: Sequence[LabeledTriple], *, fraction: float, seed: int,
    seen: AbstractSet[LabeledTriple] = frozenset(),
) -> tuple[list[LabeledTriple], list[LabeledTriple]]:
    """Hold out about `fraction` of the triples, only ones whose head, relation and tail stay in
    the training part (a held-out triple the model cannot embed would calibrate nothing) and
    none in `seen` (the triples a warm start's model was trained on: holding them out would
    calibrate the verifier on facts it has already learnt)."""
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
    train: list[LabeledTriple] = []
    held: list[LabeledTriple] = []
    for h, r, t in order:
        if (len(held) < want and degree[h] > 1 and degree[t] > 1 and rel_count[r] > 1
                and h != t and (h, r, t) not in seen):
            held.append((h, r, t))
            degree[h] -= 1
            degree[t] -= 1
            rel_count[r] -= 1
        else:
            train.append((h, r, t))
    return train, held


@overload
def _fit_kge(
    trusted: Sequence[LabeledTriple], *, settings: VerifySettings, stacked: Literal[False],
    previous: KGEModel | None = None,
) -> CalibratedScorer: ...
@overload
def _fit_kge(
    trusted: Sequence[LabeledTriple], *, settings: VerifySettings, stacked: Literal[True],
    previous: KGEModel | None = None, stack_c: float | None = None,
) -> StackedScorer | CalibratedScorer: ...
def _fit_kge(
    trusted: Sequence[LabeledTriple], *, settings: VerifySettings, stacked: bool,
    previous: KGEModel | None = None, stack_c: float | None = None,
) -> StackedScorer | CalibratedScorer:
    start = time.perf_counter()
    model, seed = settings.model, settings.seed
    keys = sorted(set(trusted))
    if len(keys) < MIN_TRUSTED:
        raise ConfigError(f"verification needs at least {MIN_TRUSTED} trusted triples, "
                          f"got {len(keys)}")
    seen = previous.training_triples() if previous else frozenset()
    train, held = split_holdout(keys, fraction=settings.holdout, seed=seed, seen=seen)
    # A catalog graph is small: check early stopping every 10 epochs, so the validation ranking
    # (over every entity, both sides) does not dominate training time.
    epochs = settings.warm_epochs if previous else settings.epochs
    kge = train_verifier(train, valid=held, model=model, dim=settings.dim, epochs=epochs,
                         seed=seed, eval_every=min(10, epochs), patience=2, init=previous,
                         training=settings.training,
                         negatives_per_positive=settings.negatives,
                         valid_max=settings.early_stop_sample)
    negatives = tail_corruptions(held, known=keys, per_triple=1, seed=seed).negatives
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
        "warm start": float(previous is not None),
        "epochs run": float(kge.report.epochs_run),
    }
    stacker, graph = None, None
    if stacked:
        graph = GraphFeatures.fit(train)
        features = np.hstack(
            [kge_features(kge, cal_triples, scores=scores), graph.features(cal_triples)]
        )
        try:
            c_grid = DEFAULT_C_GRID if stack_c is None or previous is None else (stack_c,)
            stacker = StackedClassifier.fit(
                features, labels, relations, feature_names=[*KGE_FEATURE_NAMES, *FEATURE_NAMES],
                c_grid=c_grid)
        except ValueError as error:
            logger.warning("stacked verifier not fitted (%s); using the calibrator", error)
        else:
            # out of fold: in-sample accuracy would flatter the stacker's many weights
            metrics["stacked holdout accuracy (5-fold CV)"] = stacker.cv_accuracy
            metrics["stacked holdout ECE (5-fold CV)"] = stacker.cv_ece
    metrics["seconds"] = time.perf_counter() - start
    logger.info("verifier %s: %s", model, ", ".join(
        f"{k} {v:.0f}" if k in ("train triples", "holdout positives") else f"{k} {v:.3g}"
        for k, v in metrics.items()))
    if stacker is not None and graph is not None:
        # out of fold, as its ECE above: the refitted stacker has seen every holdout row
        oof = Holdout(probability=stacker.cv_probability, labels=stacker.cv_labels,
                      source="stacked classifier, out of fold (5-fold CV)")
        return StackedScorer(kge=kge, calibrator=calibrator, stacker=stacker, graph=graph,
                             metrics=metrics, name=f"kge:{model}+stacked", holdout=oof)
    held_out = Holdout(probability=tuple(float(p) for p in probs),
                       labels=tuple(int(y) for y in labels),
                       source="per-relation calibrator, on the holdout it was fitted on")
    return CalibratedScorer(kge=kge, calibrator=calibrator, metrics=metrics, name=f"kge:{model}",
                            holdout=held_out)


def _summary(name: str, metrics: Mapping[str, float]) -> str:
    shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                      for k, v in metrics.items())
    return f"{name}: {shown}"
