"""Training: determinism, learning a planted signal (and not a shuffled one), no-KG, save/load."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from kgenrich.recsys.data import RippleData, make_ripple_data, split_indices, with_kg
from kgenrich.recsys.params import RippleParams, preset
from kgenrich.recsys.train import load_model, save_model, train_and_evaluate

N_GENRES, ITEMS_PER_GENRE, N_USERS, PER_USER = 4, 15, 120, 8
FAST = RippleParams(dim=8, n_hop=2, n_memory=16, lr=0.02, batch_size=128, n_epoch=6)


def _planted(seed: int = 0) -> RippleData:
    """Users like the items of one genre; the KG links every item to its genre and back."""
    rng = np.random.default_rng(seed)
    n_items = N_GENRES * ITEMS_PER_GENRE
    genre_of = np.arange(n_items) // ITEMS_PER_GENRE
    genre_entity = n_items + np.arange(N_GENRES)
    kg = np.concatenate([
        np.column_stack([np.arange(n_items), np.zeros(n_items, int), genre_entity[genre_of]]),
        np.column_stack([genre_entity[genre_of], np.ones(n_items, int), np.arange(n_items)]),
    ])
    rows = []
    for user in range(N_USERS):
        liked = rng.integers(N_GENRES)
        pos = rng.choice(np.flatnonzero(genre_of == liked), PER_USER, replace=False)
        neg = rng.choice(np.flatnonzero(genre_of != liked), PER_USER, replace=False)
        rows += [(user, i, 1) for i in pos] + [(user, i, 0) for i in neg]
    return make_ripple_data(ratings=np.array(rows), kg=kg, source="planted")


@pytest.fixture(scope="module")
def planted() -> RippleData:
    return _planted()


def test_training_is_deterministic(planted: RippleData) -> None:
    params = dataclasses.replace(FAST, n_epoch=2)
    a = train_and_evaluate(planted, params=params, seed=11)
    b = train_and_evaluate(planted, params=params, seed=11)
    assert [e.train_loss for e in a.epochs] == [e.train_loss for e in b.epochs]
    assert [e.test.auc for e in a.epochs] == [e.test.auc for e in b.epochs]
    assert a.test == b.test and a.best_epoch == b.best_epoch
    c = train_and_evaluate(planted, params=params, seed=12)
    assert [e.train_loss for e in c.epochs] != [e.train_loss for e in a.epochs]


def test_planted_signal_is_learned_and_shuffled_labels_are_not(planted: RippleData) -> None:
    split = split_indices(planted.ratings.shape[0], seed=0)
    result = train_and_evaluate(planted, params=FAST, seed=0, split=split)
    assert result.test.auc > 0.75, result.test
    assert result.best_epoch == max(result.epochs, key=lambda e: e.valid.auc).epoch
    ratings = planted.ratings.copy()
    ratings[:, 2] = np.random.default_rng(1).permutation(ratings[:, 2])
    shuffled = make_ripple_data(ratings=ratings, kg=planted.kg)
    noise = train_and_evaluate(shuffled, params=FAST, seed=0, split=split)
    assert noise.test.auc < 0.6, noise.test


def test_no_kg_runs_on_self_loops(planted: RippleData) -> None:
    bare = with_kg(planted, kg=None)
    result = train_and_evaluate(bare, params=dataclasses.replace(FAST, n_epoch=2), seed=0)
    assert result.self_loop_users == N_USERS
    assert 0.0 <= result.test.auc <= 1.0
    assert result.n_train + result.n_valid + result.n_test + result.n_dropped_rows == (
        planted.ratings.shape[0]
    )


def test_result_serializes_and_model_round_trips(planted: RippleData, tmp_path: Path) -> None:
    result = train_and_evaluate(
        planted, params=dataclasses.replace(FAST, n_epoch=1), seed=3, keep_model=True
    )
    as_dict = result.to_dict()
    assert "model" not in as_dict and as_dict["best_epoch"] == 1
    assert result.model is not None
    users, items = planted.ratings[:50, 0], planted.ratings[:50, 1]
    before = result.model.predict(users, items)
    save_model(result.model, tmp_path / "m.pt")
    after = load_model(tmp_path / "m.pt").predict(users, items)
    np.testing.assert_array_equal(before, after)
    assert np.all((before > 0) & (before < 1))


def test_params_validate_and_presets() -> None:
    assert preset("book").dim == 4 and preset("book").lr == 1e-3
    assert preset("movie", n_epoch=3).n_epoch == 3
    assert preset("book", dim=None).dim == 4
    with pytest.raises(ValueError):
        RippleParams(dim=0)
    with pytest.raises(ValueError):
        RippleParams(item_update_mode="sum")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        preset("news")
