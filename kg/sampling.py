"""Vectorized per-group sampling: for every group, a fixed number of positions drawn from its own
pool, without replacement when the pool is large enough (no per-group Python loop)."""

from __future__ import annotations

import numpy as np

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


__all__ = ["sample_per_group"]
