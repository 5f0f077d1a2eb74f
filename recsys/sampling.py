"""RippleNet ripple-set construction, vectorized (no per-user Python loop).

Contract: given the training positives and a KG, ``build_ripple_sets`` returns, for every user,
``n_hop`` fixed-size memories of (head, relation, tail) triples exactly as the original
RippleNet code samples them (uniform without replacement, with replacement when a user's hop
has fewer than ``n_memory`` candidate triples), with two documented fallbacks for users that
the original code cannot handle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from kgenrich.kg.sampling import sample_per_group

logger = logging.getLogger(__name__)

__all__ = ["RippleSets", "build_ripple_sets", "sample_per_group"]


@dataclass(frozen=True, eq=False)
class RippleSets:
    """Per-user memories; arrays are int64 ``[n_users, n_hop, n_memory]``.

    ``has_history[u]`` is False for users without a training positive: their rows are zeros and
    must not be scored (the original drops their rating rows).  ``self_loop_users`` counts users
    whose hop-0 memories fell back to self-loops (none of their items has an outgoing KG edge).
    """

    heads: np.ndarray
    relations: np.ndarray
    tails: np.ndarray
    has_history: np.ndarray
    self_loop_users: int
    copied_hops: int


def _csr(keys: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable order grouping ``keys`` by value, and the row pointer of that grouping."""
    order = np.argsort(keys, kind="stable")
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n_rows), out=indptr[1:])
    return order, indptr


def build_ripple_sets(
    *,
    users: np.ndarray,
    items: np.ndarray,
    kg: np.ndarray,
    n_users: int,
    n_entities: int,
    self_relation: int,
    n_hop: int,
    n_memory: int,
    rng: np.random.Generator,
) -> RippleSets:
    """Build RippleNet ripple sets from training positives ``(users[i], items[i])``.

    Hop 0 starts from each user's training positives (duplicates kept, as the original keeps a
    list); hop ``h > 0`` starts from the ``n_memory`` sampled tails of hop ``h - 1``.  Candidate
    triples follow ``kg`` rows head -> tail only (the original builds a directed adjacency).
    Fallbacks, both for users the original cannot serve:

    * hop 0 with no candidate triple (no KG, or none of the user's items has an edge): the
      memory becomes self-loops ``(item, self_relation, item)`` over the user's positives, so
      the model degrades to attention over the user's own history;
    * hop ``h > 0`` with no candidate: the previous hop is copied (the original's rule).
    """
    if n_hop < 1 or n_memory < 1:
        raise ValueError("n_hop and n_memory must be >= 1")
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    kg = np.asarray(kg, dtype=np.int64).reshape(-1, 3)
    shape = (n_users, n_hop, n_memory)
    heads = np.zeros(shape, dtype=np.int64)
    rels = np.zeros(shape, dtype=np.int64)
    tails = np.zeros(shape, dtype=np.int64)

    edge_order, kg_indptr = _csr(kg[:, 0], n_entities)
    edge_rel = kg[edge_order, 1]
    edge_tail = kg[edge_order, 2]
    kg_deg = np.diff(kg_indptr)

    seed_order, seed_indptr = _csr(users, n_users)
    seed_ent = items[seed_order]
    has_history = np.diff(seed_indptr) > 0
    self_loop_users = 0
    copied = 0
    for hop in range(n_hop):
        cum = np.zeros(seed_ent.size + 1, dtype=np.int64)
        np.cumsum(kg_deg[seed_ent], out=cum[1:])
        pool = cum[seed_indptr[1:]] - cum[seed_indptr[:-1]]
        sample = has_history & (pool > 0)
        g, p = sample_per_group(
            pool_sizes=pool, n_samples=np.where(sample, n_memory, 0), rng=rng
        )
        gpos = cum[seed_indptr[g]] + p
        row = np.searchsorted(cum, gpos, side="right") - 1
        edge = kg_indptr[seed_ent[row]] + (gpos - cum[row])
        sampled = np.flatnonzero(sample)
        heads[sampled, hop] = seed_ent[row].reshape(-1, n_memory)
        rels[sampled, hop] = edge_rel[edge].reshape(-1, n_memory)
        tails[sampled, hop] = edge_tail[edge].reshape(-1, n_memory)

        empty = has_history & (pool == 0)
        if hop == 0:
            n_seeds = np.diff(seed_indptr)
            g, p = sample_per_group(
                pool_sizes=n_seeds, n_samples=np.where(empty, n_memory, 0), rng=rng
            )
            fallback = np.flatnonzero(empty)
            loops = seed_ent[seed_indptr[g] + p].reshape(-1, n_memory)
            heads[fallback, 0] = loops
            tails[fallback, 0] = loops
            rels[fallback, 0] = self_relation
            self_loop_users = int(fallback.size)
        else:
            heads[empty, hop] = heads[empty, hop - 1]
            rels[empty, hop] = rels[empty, hop - 1]
            tails[empty, hop] = tails[empty, hop - 1]
            copied += int(empty.sum())

        seed_ent = tails[:, hop].reshape(-1)
        seed_indptr = np.arange(n_users + 1, dtype=np.int64) * n_memory

    logger.debug(
        "ripple sets: %d users with history, %d hop-0 self-loop fallbacks, %d copied hops",
        int(has_history.sum()),
        self_loop_users,
        copied,
    )
    return RippleSets(
        heads=heads,
        relations=rels,
        tails=tails,
        has_history=has_history,
        self_loop_users=self_loop_users,
        copied_hops=copied,
    )
