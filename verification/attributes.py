"""Attribute evidence for a candidate triple: what the head's (and tail's) other facts say.

An entity's *attributes* are its training facts seen from its side: ``(r, +1, t)`` for
``(e, r, t)`` and ``(r, -1, h)`` for ``(h, r, e)``. A candidate ``(h, r, t)`` asks whether ``h``
has the target attribute ``(r, +1, t)`` (and, from the tail's side, whether ``t`` has
``(r, -1, h)``). Two kinds of evidence, both counted on train only:

* constant rules ``target <- a`` for each attribute ``a`` of the entity (AnyBURL-style rules
  with constants, e.g. ``occupation(X, songwriter) <- occupation(X, singer)``), with confidence
  ``support / count(a)``: the best one, their noisy-or and how many fire;
* smoothed naive-Bayes log-odds ``log P(target | a) / P(target)`` summed, averaged and minimised
  over the entity's attributes. Unlike rules this also carries *negative* evidence (attributes
  that make the target rarer than its base rate), which hard, type-plausible negatives need.

Why here and not only in the KGE: the CoDEx hard negatives are tails a link predictor ranks
high, so an embedding score alone separates them poorly; explicit co-occurrence counts do
better (measured in ``reports/verify_codex_s.md``).

A candidate that is itself a training triple is scored leave-one-out (its own fact never
supports itself). Unseen entities or relations give zeros.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: (relation, +1 the entity is the head / -1 it is the tail, the other entity)
Attribute = tuple[str, int, str]

ATTRIBUTE_FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{side}_{name}"
    for side in ("head", "tail")
    for name in (
        "const_rule_max",
        "const_rule_noisy_or",
        "log_const_rules",
        "attr_log_odds_sum",
        "attr_log_odds_mean",
        "attr_log_odds_min",
    )
)


def has_attribute_evidence(feature_names: Sequence[str]) -> bool:
    """Whether a feature list (e.g. a stacked run's, in a JSON report) includes these columns."""
    return ATTRIBUTE_FEATURE_NAMES[0] in feature_names


@dataclass(frozen=True)
class AttributeStats:
    """Entity x attribute incidence of the training graph."""

    entity_index: dict[str, int]
    attribute_index: dict[Attribute, int]
    #: 0/1 entity x attribute matrix, in both sparse layouts (rows: an entity's attributes;
    #: columns: the entities holding an attribute)
    by_entity: sp.csr_matrix
    by_attribute: sp.csc_matrix
    counts: np.ndarray
    min_support: int
    alpha: float

    @classmethod
    def fit(
        cls, train: Sequence[tuple[str, str, str]], *, min_support: int = 2, alpha: float = 5.0
    ) -> AttributeStats:
        """Count on ``train``. A constant rule needs ``min_support`` entities holding both its
        body and its target; ``alpha`` pseudo-counts shrink log-odds of rare attributes to 0."""
        if min_support < 1 or alpha <= 0:
            raise ValueError("min_support must be >= 1 and alpha > 0")
        entities = sorted({e for h, _, t in train for e in (h, t)})
        entity_index = {e: i for i, e in enumerate(entities)}
        attribute_index: dict[Attribute, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        for h, r, t in train:
            for entity, attribute in ((h, (r, 1, t)), (t, (r, -1, h))):
                rows.append(entity_index[entity])
                cols.append(attribute_index.setdefault(attribute, len(attribute_index)))
        matrix = sp.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(len(entities), len(attribute_index))
        )
        matrix.data[:] = 1.0  # duplicate triples count once
        by_attribute = matrix.tocsc()
        by_attribute.sort_indices()  # a column's holders are searched by bisection
        return cls(
            entity_index=entity_index,
            attribute_index=attribute_index,
            by_entity=matrix,
            by_attribute=by_attribute,
            counts=np.asarray(matrix.sum(axis=0)).ravel(),
            min_support=min_support,
            alpha=alpha,
        )

    def features(self, triples: Sequence[tuple[str, str, str]]) -> np.ndarray:
        """One row of ``ATTRIBUTE_FEATURE_NAMES`` per candidate."""
        out = np.zeros((len(triples), len(ATTRIBUTE_FEATURE_NAMES)), dtype=np.float64)
        # one pass per distinct target attribute: its holders' attribute counts are shared
        groups: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        for row, (h, r, t) in enumerate(triples):
            for side, entity, target in ((0, h, (r, 1, t)), (1, t, (r, -1, h))):
                e = self.entity_index.get(entity)
                a = self.attribute_index.get(target)
                if e is not None and a is not None:
                    groups[(side, a)].append((row, e))
        width = len(ATTRIBUTE_FEATURE_NAMES) // 2
        for (side, target_id), members in groups.items():
            holders = self.by_attribute[:, target_id].indices
            support = np.asarray(self.by_entity[holders].sum(axis=0)).ravel()
            for row, entity_id in members:
                out[row, side * width : (side + 1) * width] = self._one(
                    entity_id, target_id, support, holders
                )
        return out

    def _one(
        self, entity: int, target: int, support: np.ndarray, holders: np.ndarray
    ) -> tuple[float, ...]:
        own = self.by_entity[entity].indices
        own = own[own != target]
        if len(own) == 0:
            return (0.0,) * 6
        sup = support[own]
        target_count = float(self.counts[target])
        at = int(np.searchsorted(holders, entity))
        if at < len(holders) and holders[at] == entity:  # leave-one-out: a training fact
            sup = sup - 1.0
            target_count -= 1.0
        body_count = self.counts[own]
        base = max(target_count, 0.5) / self.by_entity.shape[0]
        log_odds = np.log((sup + self.alpha * base) / (body_count + self.alpha)) - math.log(base)
        fires = sup >= self.min_support
        if fires.any():
            confidence = sup[fires] / body_count[fires]
            best = float(confidence.max())
            noisy_or = 1.0 - float(np.prod(1.0 - np.minimum(confidence, 0.99)))
        else:
            best = noisy_or = 0.0
        return (
            best,
            noisy_or,
            math.log1p(int(fires.sum())),
            float(log_odds.sum()),
            float(log_odds.mean()),
            float(log_odds.min()),
        )
