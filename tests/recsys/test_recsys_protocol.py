"""The new-item split and its KG variants on small synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from kgenrich.recsys.protocol import (
    hide_groups,
    kg_variants,
    new_item_split,
    shuffle_tails,
)


def _ratings(n_users: int = 40, n_items: int = 30, seed: int = 0) -> np.ndarray:
    """Labelled rows: each user likes a random half of the items (label 1) and dislikes
    another random set (label 0); item popularity varies so some items have < 5 positives."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        weights = np.linspace(1.0, 0.05, n_items)
        liked = rng.choice(n_items, size=8, replace=False, p=weights / weights.sum())
        others = np.setdiff1d(np.arange(n_items), liked)
        disliked = rng.choice(others, size=8, replace=False)
        rows += [(u, i, 1) for i in liked] + [(u, i, 0) for i in disliked]
    return np.asarray(rows, dtype=np.int64)


def _kg(n_items: int = 30) -> np.ndarray:
    """Every item has a genre (relation 0, 1-2 tails), most a director (relation 1), some
    actors (relation 2, 1-3 tails); tails are entities >= n_items."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n_items):
        for g in rng.choice(5, size=1 + i % 2, replace=False):
            rows.append((i, 0, n_items + g))
        if i % 5:
            rows.append((i, 1, n_items + 5 + i % 7))
        if i % 3:
            for a in rng.choice(10, size=1 + i % 3, replace=False):
                rows.append((i, 2, n_items + 12 + a))
    return np.asarray(rows, dtype=np.int64)


def test_new_items_have_no_training_row_and_all_their_rows_in_valid_or_test() -> None:
    r = _ratings()
    s = new_item_split(r, seed=3)
    assert s.new_items.size > 0
    assert not s.is_new(r[s.split.train, 1]).any()
    new_rows = np.flatnonzero(s.is_new(r[:, 1]))
    held = np.concatenate([s.split.valid, s.split.test])
    assert set(new_rows.tolist()) <= set(held.tolist())
    # half of the new items' rows to validation (int rounding), the rest to test
    in_valid = s.is_new(r[s.split.valid, 1]).sum()
    assert in_valid == int(new_rows.size * 0.5)


def test_split_is_a_partition_and_warm_rows_follow_6_2_2() -> None:
    r = _ratings()
    s = new_item_split(r, seed=5)
    parts = np.concatenate([s.split.train, s.split.valid, s.split.test])
    assert np.array_equal(np.sort(parts), np.arange(r.shape[0]))
    n_warm = int((~s.is_new(r[:, 1])).sum())
    assert (~s.is_new(r[s.split.valid, 1])).sum() == int(n_warm * 0.2)
    assert (~s.is_new(r[s.split.test, 1])).sum() == int(n_warm * 0.2)


def test_new_items_are_a_fifth_of_items_with_at_least_5_positives() -> None:
    r = _ratings()
    s = new_item_split(r, seed=1)
    pos = np.bincount(r[r[:, 2] == 1, 1], minlength=30)
    eligible = np.flatnonzero(pos >= 5)
    assert eligible.size < 30  # the fixture has rare items, so the filter is exercised
    assert np.array_equal(s.eligible_items, eligible)
    assert s.new_items.size == round(0.2 * eligible.size)
    assert set(s.new_items.tolist()) <= set(eligible.tolist())


def test_split_is_seeded() -> None:
    r = _ratings()
    a, b, c = (new_item_split(r, seed=s) for s in (7, 7, 8))
    assert np.array_equal(a.new_items, b.new_items)
    for x, y in ((a.split.train, b.split.train), (a.split.valid, b.split.valid),
                 (a.split.test, b.split.test)):
        assert np.array_equal(x, y)
    assert not (np.array_equal(a.new_items, c.new_items)
                and np.array_equal(a.split.train, c.split.train))


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 1.0])
def test_hide_fraction_is_exact_and_answer_key_is_the_removed_triples(fraction: float) -> None:
    kg = _kg()
    items = np.array([0, 3, 4, 7, 10, 11, 13])
    h = hide_groups(kg, items=items, hide_fraction=fraction, seed=2)
    groups = {(int(a), int(b)) for a, b in kg[np.isin(kg[:, 0], items)][:, :2]}
    assert h.n_groups == len(groups)
    assert h.hidden_groups.shape[0] == round(fraction * len(groups))
    hidden = {tuple(x) for x in h.hidden_groups.tolist()}
    assert hidden <= groups
    # the answer key is exactly the rows of the hidden groups; kept + hidden = the KG
    expect = [tuple(row) for row in kg.tolist() if (row[0], row[1]) in hidden]
    assert [tuple(x) for x in h.hidden.tolist()] == expect
    assert sorted(map(tuple, np.concatenate([h.kept, h.hidden]).tolist())) == sorted(
        map(tuple, kg.tolist()))
    # no item outside `items` loses anything
    assert not np.isin(h.hidden[:, 0], items, invert=True).any()


def test_hidden_groups_are_seeded() -> None:
    kg = _kg()
    items = np.arange(15)
    a, b, c = (hide_groups(kg, items=items, hide_fraction=0.5, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.hidden, b.hidden)
    assert not np.array_equal(a.hidden_groups, c.hidden_groups)


def test_shuffle_keeps_degrees_per_relation_and_changes_links() -> None:
    kg = _kg()
    s = shuffle_tails(kg, seed=4)
    for rel in range(3):
        a, b = kg[kg[:, 1] == rel], s[s[:, 1] == rel]
        degree_a, degree_b = (np.bincount(x[:, 0], minlength=30) for x in (a, b))
        assert np.array_equal(degree_a, degree_b)
        assert np.array_equal(np.sort(a[:, 2]), np.sort(b[:, 2]))
    assert np.array_equal(s[:, :2], kg[:, :2])
    assert (s[:, 2] != kg[:, 2]).mean() > 0.3


def test_shuffle_at_some_heads_leaves_the_other_rows_alone() -> None:
    kg = _kg()
    heads = np.arange(0, 30, 2)
    s = shuffle_tails(kg, seed=4, heads=heads)
    at = np.isin(kg[:, 0], heads)
    assert np.array_equal(s[~at], kg[~at])
    for rel in range(3):
        rows = at & (kg[:, 1] == rel)
        assert np.array_equal(np.sort(s[rows, 2]), np.sort(kg[rows, 2]))
    assert (s[at, 2] != kg[at, 2]).any()


def test_kg_variants_share_one_answer_key() -> None:
    kg = _kg()
    new = np.array([1, 2, 5, 8])
    kgs, hidden = kg_variants(kg, new_items=new, hide_fraction=0.5, seed=9)
    assert kgs["a"].shape == (0, 3)
    assert np.array_equal(kgs["b"], kg)
    assert np.array_equal(kgs["c"], hidden.kept)
    assert kgs["c"].shape[0] + hidden.hidden.shape[0] == kg.shape[0]
    assert kgs["r"].shape == kg.shape
    at_new = np.isin(kg[:, 0], new)
    assert np.array_equal(kgs["r_new"][~at_new], kg[~at_new])


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        new_item_split(np.zeros((3, 2), dtype=np.int64), seed=0)
    with pytest.raises(ValueError, match="hide_fraction"):
        hide_groups(_kg(), items=np.arange(3), hide_fraction=1.5, seed=0)
