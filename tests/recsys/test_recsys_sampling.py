"""Ripple-set sampling: sizes, hops, KG edges only, training positives only, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kgenrich.recsys.data import Split, make_ripple_data
from kgenrich.recsys.params import RippleParams
from kgenrich.recsys.sampling import build_ripple_sets, sample_per_group
from kgenrich.recsys.train import train_and_evaluate


@settings(max_examples=60, deadline=None)
@given(
    pools=st.lists(st.integers(0, 400), min_size=1, max_size=20),
    k=st.integers(0, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_sample_per_group_contract(pools: list[int], k: int, seed: int) -> None:
    pool = np.array(pools)
    want = np.where(pool > 0, k, 0)
    g, p = sample_per_group(pool_sizes=pool, n_samples=want, rng=np.random.default_rng(seed))
    assert np.all(np.diff(g) >= 0)
    np.testing.assert_array_equal(np.bincount(g, minlength=pool.size), want)
    assert np.all((p >= 0) & (p < pool[g]))
    for group in np.flatnonzero(pool >= want):
        picked = p[g == group]
        assert np.unique(picked).size == picked.size  # no replacement when the pool suffices


@pytest.mark.parametrize(("pool", "k"), [(10, 3), (1000, 5)])  # materialized and redraw paths
def test_sample_per_group_is_uniform(pool: int, k: int) -> None:
    groups = 20000
    g, p = sample_per_group(
        pool_sizes=np.full(groups, pool), n_samples=np.full(groups, k),
        rng=np.random.default_rng(0),
    )
    freq = np.bincount(p, minlength=pool) / groups
    expected = k / pool
    # Binomial standard error per position; 6 sigma keeps the test stable.
    sigma = np.sqrt(expected * (1 - expected) / groups)
    assert np.all(np.abs(freq - expected) < 6 * sigma + 1e-12)


def test_empty_pool_with_demand_is_an_error() -> None:
    with pytest.raises(ValueError):
        sample_per_group(
            pool_sizes=np.array([0]), n_samples=np.array([1]), rng=np.random.default_rng(0)
        )


def _chain_kg() -> np.ndarray:
    # items 0..3; entities 4.. ; item i -> 10+i (rel 0) and -> 20 (rel 1); 10+i -> 30+i (rel 2)
    rows = []
    for i in range(4):
        rows += [(i, 0, 10 + i), (i, 1, 20), (10 + i, 2, 30 + i)]
    return np.array(rows)


def test_ripple_sets_follow_hops_and_kg_edges() -> None:
    kg = _chain_kg()
    triples = {tuple(r) for r in kg}
    users = np.array([0, 0, 1, 2, 2, 2])
    items = np.array([0, 1, 2, 1, 2, 3])
    rs = build_ripple_sets(
        users=users, items=items, kg=kg, n_users=4, n_entities=40, self_relation=3,
        n_hop=3, n_memory=5, rng=np.random.default_rng(0),
    )
    assert rs.heads.shape == (4, 3, 5)
    assert rs.has_history.tolist() == [True, True, True, False]
    for u in range(3):
        seeds = set(items[users == u].tolist())
        assert set(rs.heads[u, 0].tolist()) <= seeds  # hop 0 starts at the training positives
        for hop in range(3):
            for h, r, t in zip(rs.heads[u, hop], rs.relations[u, hop], rs.tails[u, hop],
                               strict=True):
                assert (h, r, t) in triples or hop == 2  # hop 2 has no edges: copied hop 1
            if hop > 0 and hop < 2:
                assert set(rs.heads[u, hop].tolist()) <= set(rs.tails[u, hop - 1].tolist())
        # tails 20 and 30+i have no outgoing edge; 10+i has exactly one: hop 2 copies hop 1
        np.testing.assert_array_equal(rs.heads[u, 2], rs.heads[u, 1])
    # user 2 has 3 positives x 2 edges = 6 >= 5 candidates: sampled without replacement
    assert len({(h, r, t) for h, r, t in zip(rs.heads[2, 0], rs.relations[2, 0],
                                              rs.tails[2, 0], strict=True)}) == 5
    # user 1 has 2 candidates < 5: sampled with replacement, both drawn from item 2's edges
    assert set(rs.heads[1, 0].tolist()) == {2}
    assert rs.copied_hops == 3 and rs.self_loop_users == 0


def test_no_kg_falls_back_to_self_loops() -> None:
    rs = build_ripple_sets(
        users=np.array([0, 0, 1]), items=np.array([3, 4, 5]), kg=np.zeros((0, 3)),
        n_users=2, n_entities=6, self_relation=0, n_hop=2, n_memory=4,
        rng=np.random.default_rng(1),
    )
    assert rs.self_loop_users == 2
    np.testing.assert_array_equal(rs.heads, rs.tails)
    assert set(rs.heads[0].ravel().tolist()) <= {3, 4} and set(rs.heads[1].ravel()) == {5}
    assert np.all(rs.relations == 0)


def test_ripple_sets_are_seeded() -> None:
    args = dict(
        users=np.array([0, 0, 1]), items=np.array([0, 1, 2]), kg=_chain_kg(), n_users=2,
        n_entities=40, self_relation=3, n_hop=2, n_memory=8,
    )
    a = build_ripple_sets(**args, rng=np.random.default_rng(5))  # type: ignore[arg-type]
    b = build_ripple_sets(**args, rng=np.random.default_rng(5))  # type: ignore[arg-type]
    np.testing.assert_array_equal(a.tails, b.tails)


def test_test_only_item_never_seeds_a_ripple_set() -> None:
    # user 0 likes item 0 (train) and item 1 (test only); item 1 alone links to entity 9
    ratings = np.array([
        [0, 0, 1], [0, 1, 1], [0, 2, 0], [0, 3, 0],
        [1, 0, 1], [1, 2, 0], [1, 3, 1], [1, 1, 0],
    ])
    kg = np.array([[0, 0, 5], [1, 0, 9], [2, 0, 6], [3, 0, 7], [5, 1, 8], [9, 1, 8]])
    data = make_ripple_data(ratings=ratings, kg=kg)
    split = Split(train=np.array([0, 2, 3, 4, 5, 6]), valid=np.array([7]), test=np.array([1]))
    params = RippleParams(dim=4, n_hop=2, n_memory=6, n_epoch=1, batch_size=4)
    result = train_and_evaluate(data, params=params, seed=0, split=split, keep_model=True)
    assert result.model is not None
    ripple = result.model.ripple
    assert 1 not in ripple.heads[0, 0] and 9 not in ripple.tails[0].ravel()
    assert 9 not in ripple.heads[0].ravel()
    assert set(ripple.heads[0, 0].tolist()) == {0}
