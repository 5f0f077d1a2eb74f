"""RippleNet's positive/negative labelling is one function (`kg.ratings.label_ratings`): the
RippleNet exporter and `recsys.load_recbole` give the same rows, and the rows are those the
recommender's own sampler drew before the two were merged."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kgenrich.kg.export.ripplenet import Interaction, write_ripplenet
from kgenrich.kg.ratings import label_ratings
from kgenrich.kg.records import Provenance, SourceKind, Triple
from kgenrich.recsys.data import load_recbole

# (user, item, rating); users 2 and 6 have no rating >= 4 and are dropped.
ROWS = [(1, 0, 5), (1, 1, 4), (1, 2, 1), (2, 3, 2), (3, 4, 5), (3, 5, 4), (3, 6, 3), (4, 7, 5),
        (4, 0, 4), (4, 1, 5), (5, 2, 4), (5, 9, 1), (6, 8, 2)]
# What `recsys.data.load_recbole(..., seed=0)` returned before the merge (commit d889e27).
BEFORE_SEED_0 = [
    [0, 0, 1], [0, 1, 1], [0, 6, 0], [0, 5, 0], [1, 4, 1], [1, 5, 1], [1, 7, 0], [1, 9, 0],
    [2, 0, 1], [2, 1, 1], [2, 7, 1], [2, 9, 0], [2, 3, 0], [2, 6, 0], [3, 2, 1], [3, 0, 0],
]


def test_label_ratings_reproduces_the_rows_drawn_before_the_merge() -> None:
    users = np.array([u - 1 for u, _, _ in ROWS])
    items = np.array([i for _, i, _ in ROWS])
    ratings = np.array([r for _, _, r in ROWS], dtype=np.float64)
    out = label_ratings(users=users, items=items, ratings=ratings, n_items=10,
                        rating_threshold=4, seed=0)
    assert out.rows.tolist() == BEFORE_SEED_0
    assert out.kept_users.tolist() == [0, 2, 3, 4]  # u1, u3, u4, u5
    assert out.missing_negatives == 0


def test_nan_rating_is_implicit_feedback_and_no_positive_gives_no_rows() -> None:
    out = label_ratings(users=np.array([0, 1]), items=np.array([0, 1]),
                        ratings=np.array([np.nan, 1.0]), n_items=3, rating_threshold=4, seed=0)
    assert out.kept_users.tolist() == [0]
    assert sorted(out.rows[:, 2].tolist()) == [0, 1] and set(out.rows[:, 0].tolist()) == {0}
    none = label_ratings(users=np.array([0]), items=np.array([0]), ratings=np.array([1.0]),
                         n_items=3, rating_threshold=4, seed=0)
    assert none.rows.shape == (0, 3) and none.kept_users.size == 0


def test_missing_negatives_are_counted() -> None:
    # User 0 rates 2 of 3 items highly: only one unrated item is left for two negatives.
    out = label_ratings(users=np.array([0, 0]), items=np.array([0, 1]), ratings=None,
                        n_items=3, rating_threshold=4, seed=0)
    assert out.rows.tolist() == [[0, 0, 1], [0, 1, 1], [0, 2, 0]]
    assert out.missing_negatives == 1


def test_exporter_and_recbole_loader_label_alike(tmp_path: Path) -> None:
    inter = tmp_path / "x.inter"
    inter.write_text("user_id:token\titem_id:token\trating:float\n"
                     + "".join(f"u{u}\ti{i}\t{r}\n" for u, i, r in ROWS), encoding="utf-8")
    for seed in (0, 3):
        loaded = load_recbole(inter, rating_threshold=4, seed=seed)
        # Single-digit ids: the exporter's natural order equals the loader's sorted order.
        items = [f"i{n}" for n in range(10)]
        # one triple per item: the exporter drops items without one
        write_ripplenet(tmp_path / f"r{seed}", entities=[], triples=[
                            Triple(head=f"item/{i}", relation="has_genre", tail="genre/g",
                                   provenance=Provenance(source=SourceKind.SEED))
                            for i in items],
                        items=items,
                        interactions=[Interaction(user=f"u{u}", item=f"i{i}", rating=r)
                                      for u, i, r in ROWS],
                        rating_threshold=4, seed=seed)
        text = (tmp_path / f"r{seed}" / "ratings_final.txt").read_text(encoding="utf-8")
        written = [list(map(int, line.split("\t"))) for line in text.splitlines()]
        assert written == loaded.ratings.tolist(), seed
    assert load_recbole(inter, rating_threshold=4, seed=0).ratings.tolist() == BEFORE_SEED_0
