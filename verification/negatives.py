"""Type-consistent negatives: a trusted triple with its tail replaced by another tail seen for
the same relation, never a triple believed true. One sampler for every verifier."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from kgenrich.verification.triples import LabeledTriple

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorruptionResult:
    """Negatives made from trusted triples, with what could not be made and why."""

    negatives: tuple[LabeledTriple, ...]
    #: for each negative, the index of the trusted triple it corrupts
    source_index: tuple[int, ...]
    #: (index of trusted triple, reason) for every requested corruption that was not made
    skipped: tuple[tuple[int, str], ...]

    def pairs(self) -> list[tuple[int, LabeledTriple]]:
        """(index of the source triple, negative) per negative, in draw order."""
        return list(zip(self.source_index, self.negatives, strict=True))


def tail_corruptions(
    triples: Sequence[LabeledTriple],
    *,
    known: Iterable[LabeledTriple],
    per_triple: int,
    seed: int,
    tail_pool: Mapping[str, Sequence[str]] | None = None,
    independent_tries: int | None = None,
) -> CorruptionResult:
    """Up to ``per_triple`` negatives per triple: its tail replaced by a draw from its relation's
    pool, never giving a triple of ``triples`` or ``known`` (pass every triple believed true).

    ``tail_pool``: relation -> tails to draw from (distinct tails for uniform draws, every
    occurrence for frequency-weighted ones); None: the distinct tails of ``triples`` and
    ``known``. Two ways to draw, each kept because saved figures were measured with it:

    - ``independent_tries`` None (the calibration holdout): distinct tails, and the same
      (head, relation) never gets the same replacement twice across triples; rejection
      sampling with an exhaustive fallback, so a shortfall means no other tail exists.
    - ``independent_tries`` n (the text fallback): ``per_triple * n`` independent uniform draws
      per triple (numpy), keeping the first ``per_triple`` allowed ones; repeats are possible.

    Shortfalls are reported in ``skipped``. Deterministic for a given ``seed``.
    """
    known = list(known)
    true_tails: dict[tuple[str, str], set[str]] = defaultdict(set)
    for h, r, t in (*triples, *known):
        true_tails[(h, r)].add(t)
    if tail_pool is None:
        pool_sets: dict[str, set[str]] = defaultdict(set)
        for _, r, t in (*triples, *known):
            pool_sets[r].add(t)
        # sorted, so the draw depends only on the seed, not on set iteration order
        tail_pool = {r: sorted(tails) for r, tails in pool_sets.items()}
    if independent_tries is None:
        return _distinct(triples, tail_pool, true_tails, per_triple, random.Random(seed))
    return _independent(
        triples, tail_pool, true_tails, per_triple, np.random.default_rng(seed), independent_tries
    )


def _distinct(
    triples: Sequence[LabeledTriple],
    pools: Mapping[str, Sequence[str]],
    true_tails: Mapping[tuple[str, str], set[str]],
    per_triple: int,
    rng: random.Random,
) -> CorruptionResult:
    negatives: list[LabeledTriple] = []
    sources: list[int] = []
    skipped: list[tuple[int, str]] = []
    used: dict[tuple[str, str], set[str]] = defaultdict(set)
    for index, (h, r, _t) in enumerate(triples):
        pool = pools.get(r, ())
        blocked = true_tails[(h, r)] | used[(h, r)]
        chosen = _draw_distinct(pool, blocked, per_triple, rng) if pool else []
        for tail in chosen:
            negatives.append((h, r, tail))
            sources.append(index)
            used[(h, r)].add(tail)
        if len(chosen) < per_triple:
            skipped.append(
                (index, f"only {len(chosen)} of {per_triple}: relation {r!r} has no other tails")
            )
    if skipped:
        logger.info("corruptions: %d triples had too few candidate tails", len(skipped))
    return CorruptionResult(tuple(negatives), tuple(sources), tuple(skipped))


def _draw_distinct(
    pool: Sequence[str], blocked: set[str], k: int, rng: random.Random
) -> list[str]:
    # rejection sampling is cheap while few pool members are blocked (the usual case); the
    # exhaustive fallback keeps the result exact when most of the pool is blocked
    chosen: list[str] = []
    taken: set[str] = set()
    for _ in range(8 * k + 8):
        if len(chosen) == k:
            return chosen
        tail = pool[rng.randrange(len(pool))]
        if tail not in blocked and tail not in taken:
            chosen.append(tail)
            taken.add(tail)
    rest = [tail for tail in pool if tail not in blocked and tail not in taken]
    rng.shuffle(rest)
    return chosen + rest[: k - len(chosen)]


def _independent(
    triples: Sequence[LabeledTriple],
    pools: Mapping[str, Sequence[str]],
    true_tails: Mapping[tuple[str, str], set[str]],
    per_triple: int,
    rng: np.random.Generator,
    tries: int,
) -> CorruptionResult:
    negatives: list[LabeledTriple] = []
    sources: list[int] = []
    skipped: list[tuple[int, str]] = []
    for index, (h, r, _t) in enumerate(triples):
        pool = pools.get(r)
        got = 0
        if pool:
            # drawn up front, so the stream of draws per triple is fixed whatever is blocked
            for j in rng.integers(0, len(pool), size=per_triple * tries):
                tail = pool[int(j)]
                if tail in true_tails[(h, r)]:
                    continue
                negatives.append((h, r, tail))
                sources.append(index)
                got += 1
                if got == per_triple:
                    break
        if got < per_triple:
            skipped.append((index, f"only {got} of {per_triple} after {tries} tries each"))
    return CorruptionResult(tuple(negatives), tuple(sources), tuple(skipped))
