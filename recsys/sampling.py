"""Vectorized per-group sampling and RippleNet ripple-set construction (no per-user Python loop).

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

logger = logging.getLogger(__name__)

# Groups whose pool is at most this many times the sample size are sampled by materializing
# every position with a random key (exact and cheap because the pool is small); larger pools
# draw positions and redraw collisions, which converges in a few rounds at this ratio.
_MATERIALIZE_FACTOR = 4


def sample_per_group(
    *,
    pool_sizes: np.ndarray,
    n_samples: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n_samples[g]`` positions in ``[0, pool_sizes[g])`` for every group ``g``.

    A group whose pool holds at least ``n_samples[g]`` positions gets a uniform sample without
    replacement; a smaller, non-empty pool is sampled with replacement (RippleNet's rule for
    short ripple sets).  Returns ``(group, position)`` int64 arrays ordered by ascending group,
    exactly ``n_samples[g]`` rows per group, in random order within a group.  Raises
    ``ValueError`` when a group asks for samples from an empty pool.
    """
    pool = np.asarray(pool_sizes, dtype=np.int64)
    want = np.asarray(n_samples, dtype=np.int64)
    if pool.shape != want.shape or pool.ndim != 1:
        raise ValueError("pool_sizes and n_samples must be 1-D arrays of the same length")
    if np.any(want < 0) or np.any(pool < 0):
        raise ValueError("pool_sizes and n_samples must be non-negative")
    if np.any((want > 0) & (pool == 0)):
        raise ValueError("a group asks for samples from an empty pool")
    groups = np.arange(pool.size, dtype=np.int64)
    active = want > 0
    short = active & (pool < want)
    small = active & ~short & (pool <= _MATERIALIZE_FACTOR * want)
    large = active & ~short & ~small
    parts_g: list[np.ndarray] = []
    parts_p: list[np.ndarray] = []

    # Short pools: i.i.d. draws, as np.random.choice(..., replace=True) in the original.
    g = np.repeat(groups[short], want[short])
    parts_g.append(g)
    parts_p.append(rng.integers(0, pool[g]) if g.size else g.copy())

    # Small pools: every position gets a uniform key; the k smallest keys form the sample.
    sizes = pool[small]
    g = np.repeat(groups[small], sizes)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    pos = np.arange(g.size, dtype=np.int64) - starts
    order = np.lexsort((rng.random(g.size), g))
    g, pos = g[order], pos[order]
    rank = np.arange(g.size, dtype=np.int64) - starts  # g is still grouped with the same sizes
    keep = rank < want[g]
    parts_g.append(g[keep])
    parts_p.append(pos[keep])

    # Large pools: draw, then redraw every collision until a group's positions are distinct.
    # The procedure only compares positions for equality, so its law is invariant under any
    # relabelling of a pool: the resulting set is a uniform k-subset.
    g = np.repeat(groups[large], want[large])
    pos = rng.integers(0, pool[g]) if g.size else g.copy()
    while g.size:
        order = np.lexsort((pos, g))
        gs, ps = g[order], pos[order]
        same = (gs[1:] == gs[:-1]) & (ps[1:] == ps[:-1])
        if not same.any():
            break
        dup = order[1:][same]
        pos[dup] = rng.integers(0, pool[g[dup]])
    parts_g.append(g)
    parts_p.append(pos)

    all_g = np.concatenate(parts_g)
    all_p = np.concatenate(parts_p)
    order = np.argsort(all_g, kind="stable")
    return all_g[order].astype(np.int64), all_p[order].astype(np.int64)


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
