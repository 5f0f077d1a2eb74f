"""Book-Crossing as RippleNet ships it (../shared/data): the loaders and ripple sets at scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kgenrich.recsys.data import load_ripplenet_dir, split_indices
from kgenrich.recsys.sampling import build_ripple_sets

BOOK = Path(__file__).resolve().parents[3] / "shared" / "data" / "book-crossing"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not BOOK.is_dir(), reason=f"shared data not found at {BOOK}"),
]


def test_book_crossing_loads_with_published_counts() -> None:
    data = load_ripplenet_dir(BOOK)
    assert data.ratings.shape == (139746, 3)
    assert (data.n_users, data.n_items) == (17860, 14967)
    assert (data.kg.shape[0], data.n_relations, data.n_entities) == (151500, 25, 77903)
    assert data.ratings[:, 2].mean() == pytest.approx(0.5)


def test_book_crossing_ripple_sets_use_training_positives_only() -> None:
    data = load_ripplenet_dir(BOOK)
    split = split_indices(data.ratings.shape[0], seed=1)
    train = data.ratings[split.train]
    pos = train[train[:, 2] == 1]
    rs = build_ripple_sets(
        users=pos[:, 0], items=pos[:, 1], kg=data.kg, n_users=data.n_users,
        n_entities=data.n_entities, self_relation=data.n_relations, n_hop=2, n_memory=32,
        rng=np.random.default_rng(0),
    )
    assert rs.heads.shape == (data.n_users, 2, 32)
    # every hop-0 head is one of that user's training positives
    codes = np.unique(pos[:, 0] * data.n_items + pos[:, 1])
    users = np.flatnonzero(rs.has_history)
    hop0 = users[:, None] * data.n_items + rs.heads[users, 0]
    assert np.isin(hop0, codes).all()
    # every sampled memory is a KG triple
    kg_codes = np.unique(
        (data.kg[:, 0] * (data.n_relations + 1) + data.kg[:, 1]) * data.n_entities + data.kg[:, 2]
    )
    mem = (rs.heads[users] * (data.n_relations + 1) + rs.relations[users]) * data.n_entities
    assert np.isin(mem + rs.tails[users], kg_codes).all()
