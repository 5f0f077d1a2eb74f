"""KGItemNet: neighbour bags, shapes, and that a new item is scored from its KG neighbours."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from kgenrich.recsys.data import Split, make_ripple_data
from kgenrich.recsys.kgitem_model import KGItemNet, item_neighbours
from kgenrich.recsys.kgitem_train import best_threshold, train_kgitem
from kgenrich.recsys.params import KGItemParams

N_ITEMS = 40
GENRE_A, GENRE_B = N_ITEMS, N_ITEMS + 1
NEW = np.array([0, 1, 2, 20, 21, 22])


def _taste_data() -> tuple[np.ndarray, np.ndarray]:
    """Half the users like genre A (items 0-19) and dislike B (20-39), the other half the
    reverse; the KG says which genre each item has.  Users 0 and 1 are one of each kind."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(60):
        likes_a = u % 2 == 0
        good = np.arange(0, 20) if likes_a else np.arange(20, 40)
        bad = np.arange(20, 40) if likes_a else np.arange(0, 20)
        rows += [(u, int(i), 1) for i in rng.choice(good, size=10, replace=False)]
        rows += [(u, int(i), 0) for i in rng.choice(bad, size=10, replace=False)]
    kg = np.array([(i, 0, GENRE_A if i < 20 else GENRE_B) for i in range(N_ITEMS)])
    return np.asarray(rows, dtype=np.int64), kg


def _new_item_split(ratings: np.ndarray) -> Split:
    new = np.isin(ratings[:, 1], NEW)
    rows = np.flatnonzero(new)
    return Split(train=np.flatnonzero(~new), valid=rows[::2], test=rows[1::2])


def _net(kg: np.ndarray, *, warm: np.ndarray | None = None, seed: int = 0) -> KGItemNet:
    return KGItemNet(
        n_users=5, n_items=N_ITEMS, n_entities=N_ITEMS + 2,
        neighbours=item_neighbours(kg, n_items=N_ITEMS, per_relation=True),
        warm=np.ones(N_ITEMS, dtype=bool) if warm is None else warm,
        params=KGItemParams(dim=4), seed=seed,
    )


def test_neighbour_weights_are_a_mean_per_relation_summed_over_relations() -> None:
    kg = np.array([(0, 0, 10), (0, 0, 11), (0, 1, 12), (2, 0, 10), (0, 0, 10)])  # a duplicate
    nb = item_neighbours(kg, n_items=3, per_relation=True)
    assert nb.indptr.tolist() == [0, 3, 3, 4]
    assert nb.entities[:3].tolist() == [10, 11, 12]
    assert nb.weights[:3].tolist() == [0.5, 0.5, 1.0]  # the duplicate row counts once
    assert nb.weights[3] == 1.0
    flat = item_neighbours(kg, n_items=3, per_relation=False)
    assert flat.weights.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0])


def test_forward_gives_one_logit_per_row() -> None:
    _, kg = _taste_data()
    net = _net(kg)
    out = net(torch.tensor([0, 1, 4]), torch.tensor([3, 5, 39]))
    assert out.shape == (3,)
    q, k = net.neighbour_part()
    assert q.shape == (N_ITEMS, 4) and k.shape == (N_ITEMS,)


def test_a_new_items_score_depends_on_its_kg_neighbours() -> None:
    _, kg = _taste_data()
    warm = np.ones(N_ITEMS, dtype=bool)
    warm[0] = False
    other = kg.copy()
    other[0, 2] = GENRE_B  # item 0 now links to the other genre
    nets = [_net(g, warm=warm) for g in (kg, other)]
    for net in nets:
        with torch.no_grad():
            net.entity_emb.copy_(torch.randn(net.entity_emb.shape,
                                             generator=torch.Generator().manual_seed(1)))
            net.item_emb.copy_(torch.randn(net.item_emb.shape,
                                           generator=torch.Generator().manual_seed(2)))
    users, items = torch.tensor([0, 1, 2]), torch.zeros(3, dtype=torch.long)
    a, b = (net(users, items) for net in nets)
    assert not torch.allclose(a, b)
    # a new item's own embedding is ignored: only its neighbours (and the user) count
    with torch.no_grad():
        nets[0].item_emb[0] += 10.0
    assert torch.allclose(nets[0](users, items), a)
    # a warm item with the same neighbours differs from the new one by its own embedding
    assert not torch.allclose(nets[0](users, torch.full((3,), 1)),
                              nets[0](users, torch.full((3,), 0)))


def test_without_kg_every_new_item_scores_the_same_for_a_user() -> None:
    warm = np.ones(N_ITEMS, dtype=bool)
    warm[NEW] = False
    net = _net(np.zeros((0, 3), dtype=np.int64), warm=warm)
    with torch.no_grad():
        net.item_emb.normal_()
        net.item_bias.normal_()
    scores = net(torch.zeros(NEW.size, dtype=torch.long), torch.from_numpy(NEW))
    assert torch.allclose(scores, scores[0].expand_as(scores))


def test_trained_model_ranks_new_items_by_their_genre_only_with_the_kg() -> None:
    ratings, kg = _taste_data()
    split = _new_item_split(ratings)
    params = KGItemParams(dim=8, n_epoch=30, batch_size=64, lr=0.05, id_dropout=0.5)
    with_kg = train_kgitem(make_ripple_data(ratings=ratings, kg=kg), split=split,
                           new_items=NEW, params=params, seed=0, keep_model=True)
    no_kg = train_kgitem(make_ripple_data(ratings=ratings, kg=None, n_entities=N_ITEMS + 2),
                         split=split, new_items=NEW, params=params, seed=0)
    assert with_kg.test_new.auc > 0.9
    assert no_kg.test_new.auc < 0.7
    assert with_kg.test_new.n == split.test.size
    # nothing trained the new items' own embeddings: they are still exactly zero
    assert with_kg.model is not None
    assert torch.count_nonzero(with_kg.model.item_emb[torch.from_numpy(NEW)]) == 0
    assert with_kg.n_warm_items == N_ITEMS - NEW.size


def test_training_is_deterministic_for_a_seed() -> None:
    ratings, kg = _taste_data()
    split = _new_item_split(ratings)
    params = KGItemParams(dim=4, n_epoch=3, batch_size=64)
    data = make_ripple_data(ratings=ratings, kg=kg)
    a, b = (train_kgitem(data, split=split, new_items=NEW, params=params, seed=3)
            for _ in range(2))
    # test_warm is nan here (no warm row is held out), and nan != nan: compare the rest.
    assert dataclasses.replace(a, seconds=0.0, test_warm=b.test_warm) == dataclasses.replace(
        b, seconds=0.0)


def test_focus_items_are_scored_on_their_own_rows_without_changing_training() -> None:
    ratings, kg = _taste_data()
    split = _new_item_split(ratings)
    params = KGItemParams(dim=4, n_epoch=3, batch_size=64)
    data = make_ripple_data(ratings=ratings, kg=kg)
    focus = NEW[:2]
    plain = train_kgitem(data, split=split, new_items=NEW, params=params, seed=3)
    focused = train_kgitem(data, split=split, new_items=NEW, params=params, seed=3,
                           focus_items=focus)
    assert plain.test_focus is None and focused.test_focus is not None
    assert focused.test_focus.n == int(np.isin(ratings[split.test, 1], focus).sum())
    assert 0 < focused.test_focus.n < focused.test_new.n
    assert focused.test_new == plain.test_new and focused.best_epoch == plain.best_epoch


def test_best_threshold_maximizes_accuracy() -> None:
    labels = np.array([0, 0, 1, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.8, 0.9])
    t = best_threshold(labels, scores)
    acc = np.mean((scores >= t) == labels)
    assert acc == pytest.approx(5 / 6)
    assert all(np.mean((scores >= x) == labels) <= acc for x in np.linspace(0, 1, 101))
    assert best_threshold(np.zeros(0), np.zeros(0)) == 0.5
    assert best_threshold(np.ones(3), np.array([0.1, 0.2, 0.3])) <= 0.1


def test_params_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="id_dropout"):
        KGItemParams(id_dropout=1.0)
    with pytest.raises(ValueError, match="dim"):
        KGItemParams(dim=0)
