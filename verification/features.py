"""Graph features of candidate triples, computed from the trusted (training) triples only.

Contract: ``GraphFeatures.fit(train)`` counts and mines rules on ``train``; ``features(triples)``
returns one row of ``FEATURE_NAMES`` per candidate (finite for any labels, seen or not). The
stacked verifier learns how much each one is worth; nothing here looks at labels of candidates.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from kgenrich.verification.attributes import ATTRIBUTE_FEATURE_NAMES, AttributeStats
from kgenrich.verification.triples import LabeledTriple

logger = logging.getLogger(__name__)

#: columns of ``GraphFeatures.features``, in order
FEATURE_NAMES: tuple[str, ...] = (
    "log_head_relation_count",  # tails the head already has for this relation
    "head_has_relation",
    "log_relation_tail_count",  # how often the tail is a tail of this relation
    "tail_seen_for_relation",
    "log_head_degree",
    "log_tail_degree",
    "log_pair_links",  # triples linking head and tail (either direction, any relation)
    "inverse_in_train",  # (tail, relation, head) is a training triple
    "log_common_neighbours",
    "rule_max_confidence",  # best path rule r(h, t) <- body(h, t) that fires
    "rule_noisy_or",
    "log_rules_fired",
    *ATTRIBUTE_FEATURE_NAMES,  # what the head's and tail's other facts say (attributes.py)
)
_N_PATH = len(FEATURE_NAMES) - len(ATTRIBUTE_FEATURE_NAMES)  # columns before attribute evidence

#: a rule body step: (relation, +1 forward / -1 inverse)
Step = tuple[str, int]
Body = tuple[Step, ...]


@dataclass(frozen=True)
class Rule:
    """``relation(h, t) <- body(h, t)`` with its confidence (support / body pairs) in train."""

    relation: str
    body: Body
    confidence: float
    support: int


@dataclass(frozen=True)
class GraphFeatures:
    """Counts over the training graph plus path rules of length 1 and 2 mined from it."""

    head_relation: Mapping[tuple[str, str], int]
    relation_tail: Mapping[tuple[str, str], int]
    degree: Mapping[str, int]
    pair_links: Mapping[tuple[str, str], int]
    triples: frozenset[LabeledTriple]
    neighbours: Mapping[str, frozenset[str]]
    rules: Mapping[str, tuple[Rule, ...]]
    entity_index: Mapping[str, int]
    #: body -> 0/1 sparse (entity x entity) matrix of pairs the body connects, for mined rules
    bodies: Mapping[Body, sp.csr_matrix]
    attributes: AttributeStats

    @classmethod
    def fit(
        cls,
        train: Sequence[LabeledTriple],
        *,
        min_support: int = 3,
        max_rules: int = 50,
        constant_min_support: int = 2,
        alpha: float = 5.0,
        max_body_pairs: int = 10_000_000,
    ) -> GraphFeatures:
        """Count and mine rules on ``train``; keep each relation's ``max_rules`` most confident
        path rules with at least ``min_support`` training triples. ``constant_min_support`` and
        ``alpha`` go to ``AttributeStats.fit`` (constant rules and attribute log-odds). A
        two-step rule body whose path product could exceed ``max_body_pairs`` entity pairs is
        not mined (a hub such as a genre shared by thousands of items would need memory
        quadratic in its degree); CoDEx-S's largest body needs 2.5M."""
        head_relation: Counter[tuple[str, str]] = Counter()
        relation_tail: Counter[tuple[str, str]] = Counter()
        degree: Counter[str] = Counter()
        pair_links: Counter[tuple[str, str]] = Counter()
        neighbours: dict[str, set[str]] = defaultdict(set)
        for h, r, t in train:
            head_relation[(h, r)] += 1
            relation_tail[(r, t)] += 1
            degree[h] += 1
            degree[t] += 1
            pair_links[(h, t)] += 1
            pair_links[(t, h)] += 1
            neighbours[h].add(t)
            neighbours[t].add(h)
        entities = sorted(degree)
        index = {e: i for i, e in enumerate(entities)}
        rules, bodies = _mine_rules(
            train, index, min_support=min_support, max_rules=max_rules, max_pairs=max_body_pairs
        )
        return cls(
            head_relation=dict(head_relation),
            relation_tail=dict(relation_tail),
            degree=dict(degree),
            pair_links=dict(pair_links),
            triples=frozenset(train),
            neighbours={e: frozenset(n) for e, n in neighbours.items()},
            rules=rules,
            entity_index=index,
            bodies=bodies,
            attributes=AttributeStats.fit(train, min_support=constant_min_support, alpha=alpha),
        )

    def features(self, triples: Sequence[LabeledTriple]) -> np.ndarray:
        """One row of ``FEATURE_NAMES`` per triple (unseen labels count as zero everywhere)."""
        out = np.zeros((len(triples), len(FEATURE_NAMES)), dtype=np.float64)
        empty: frozenset[str] = frozenset()
        for row, (h, r, t) in enumerate(triples):
            hr = self.head_relation.get((h, r), 0)
            rt = self.relation_tail.get((r, t), 0)
            common = self.neighbours.get(h, empty) & self.neighbours.get(t, empty)
            out[row, :9] = (
                math.log1p(hr),
                float(hr > 0),
                math.log1p(rt),
                float(rt > 0),
                math.log1p(self.degree.get(h, 0)),
                math.log1p(self.degree.get(t, 0)),
                math.log1p(self.pair_links.get((h, t), 0)),
                float((t, r, h) in self.triples),
                math.log1p(len(common)),
            )
        out[:, 9:_N_PATH] = self._rule_features(triples)
        out[:, _N_PATH:] = self.attributes.features(triples)
        return out

    def _rule_features(self, triples: Sequence[LabeledTriple]) -> np.ndarray:
        out = np.zeros((len(triples), 3), dtype=np.float64)
        by_relation: dict[str, list[int]] = defaultdict(list)
        for row, (h, r, t) in enumerate(triples):
            if h in self.entity_index and t in self.entity_index and r in self.rules:
                by_relation[r].append(row)
        for r, rows in by_relation.items():
            heads = np.array([self.entity_index[triples[i][0]] for i in rows])
            tails = np.array([self.entity_index[triples[i][2]] for i in rows])
            best = np.zeros(len(rows))
            none_fire = np.ones(len(rows))
            fired = np.zeros(len(rows))
            for rule in self.rules[r]:
                fires = np.asarray(self.bodies[rule.body][heads, tails]).ravel() > 0
                best = np.where(fires, np.maximum(best, rule.confidence), best)
                none_fire = np.where(fires, none_fire * (1.0 - rule.confidence), none_fire)
                fired += fires
            out[rows] = np.column_stack([best, 1.0 - none_fire, np.log1p(fired)])
        return out


def _mine_rules(
    train: Sequence[LabeledTriple],
    index: Mapping[str, int],
    *,
    min_support: int,
    max_rules: int,
    max_pairs: int,
) -> tuple[dict[str, tuple[Rule, ...]], dict[Body, sp.csr_matrix]]:
    # sparse adjacency per direction; a body of length 2 is a boolean matrix product, so every
    # path type is enumerated once (~2k non-empty bodies on CoDEx-S, seconds on one core)
    n = len(index)
    by_relation: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for h, r, t in train:
        by_relation[r].append((index[h], index[t]))
    steps: dict[Step, sp.csr_matrix] = {}
    for r, pairs in sorted(by_relation.items()):
        rows, cols = zip(*pairs, strict=True)
        matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
        matrix.data[:] = 1.0
        steps[(r, 1)] = matrix
        steps[(r, -1)] = matrix.T.tocsr()
    candidates: dict[Body, sp.csr_matrix] = {(step,): m for step, m in steps.items()}
    # upper bound of a product's work and size: sum over middle entities of in x out degree
    into = {step: np.diff(m.tocsc().indptr) for step, m in steps.items()}
    out_of = {step: np.diff(m.indptr) for step, m in steps.items()}
    skipped = 0
    for first, a in steps.items():
        for second, b in steps.items():
            if float(into[first] @ out_of[second]) > max_pairs:
                skipped += 1
                continue
            product = (a @ b).tocsr()
            product.setdiag(0)  # h -> x -> h is not evidence for a relation between h and h
            product.eliminate_zeros()
            if product.nnz:
                product.data[:] = 1.0
                candidates[(first, second)] = product
    if skipped:
        logger.info(
            "graph features: %d two-step rule bodies skipped (over %d pairs)", skipped, max_pairs
        )
    rules: dict[str, tuple[Rule, ...]] = {}
    for r in by_relation:
        head = steps[(r, 1)]
        found: list[Rule] = []
        for body, matrix in candidates.items():
            if body == ((r, 1),):
                continue  # the relation itself is what the rule must predict
            support = head.multiply(matrix).nnz
            if support >= min_support:
                found.append(Rule(r, body, support / matrix.nnz, support))
        found.sort(key=lambda rule: (-rule.confidence, -rule.support))
        rules[r] = tuple(found[:max_rules])
    used = {rule.body for kept in rules.values() for rule in kept}
    return rules, {body: candidates[body] for body in used}
