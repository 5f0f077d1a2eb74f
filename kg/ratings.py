"""RippleNet's labelling of interactions, as its `preprocess.py` does it: a rating >=
`rating_threshold` (or no rating: implicit feedback) is a positive; every user with a positive gets
as many negatives, drawn without replacement (seeded) from the items the user never rated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from kgenrich.kg.sampling import sample_per_group

# RippleNet's threshold for MovieLens (its Book-Crossing preprocessing uses 0): the default of
# every caller that labels ratings without being told otherwise.
DEFAULT_RATING_THRESHOLD = 4.0
# The seed of the negative draw when none is given: an export's ratings_final.txt and ratings
# labelled later from the same interactions (`kgenrich recommend --interactions`) then agree.
DEFAULT_RATINGS_SEED = 0


class Interaction(BaseModel):
    """One user-item interaction; `rating` None means implicit feedback (a positive)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str
    item: str
    rating: float | None = None


@dataclass(frozen=True, eq=False)
class LabelledRatings:
    """RippleNet rating rows and which input users they keep.

    `rows`: int64 `[n, 3]` rows `(user, item, label)`, label 1 positive, 0 sampled negative;
    grouped by user (ascending), each user's positives first (ascending item), then negatives.
    `kept_users[u]` is the input user int of output user `u` (users without a positive are
    dropped, the others renumbered in input order). `missing_negatives` counts negatives that
    could not be drawn because a user rated almost every item.
    """

    rows: np.ndarray
    kept_users: np.ndarray
    missing_negatives: int


def label_ratings(
    *,
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray | None,
    n_items: int,
    rating_threshold: float,
    seed: int,
) -> LabelledRatings:
    """Label interactions `(users[k], items[k], ratings[k])` the RippleNet way (module docstring).

    `users` are ints `0..n_users-1` in the order output users are numbered, `items` ints in
    `[0, n_items)`; `ratings` is float (NaN = no rating) or None for all-implicit feedback.
    Duplicate interactions count once. Same inputs and `seed`, same rows.
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if ratings is None:
        positive = np.ones(users.size, dtype=bool)
    else:
        r = np.asarray(ratings, dtype=np.float64)
        positive = np.isnan(r) | (r >= rating_threshold)
    empty = np.zeros((0, 3), dtype=np.int64)
    if not positive.any():
        return LabelledRatings(rows=empty, kept_users=np.zeros(0, dtype=np.int64),
                               missing_negatives=0)
    # Users without a positive have nothing to pair negatives with: dropped, the rest
    # renumbered densely in input order.
    n_in = int(users.max()) + 1
    has_pos = np.bincount(users[positive], minlength=n_in) > 0
    kept_users = np.flatnonzero(has_pos)
    keep = has_pos[users]
    user_idx = (np.cumsum(has_pos) - 1)[users[keep]]
    item_idx, positive = items[keep], positive[keep]
    neg_users, neg_items, missing = _sample_negatives(
        users=user_idx, items=item_idx, positive=positive, n_items=n_items,
        rng=np.random.default_rng(seed),
    )
    pos_codes = np.unique(user_idx[positive] * n_items + item_idx[positive])
    rows = np.concatenate([
        np.stack([pos_codes // n_items, pos_codes % n_items, np.ones_like(pos_codes)], axis=1),
        np.stack([neg_users, neg_items, np.zeros_like(neg_users)], axis=1),
    ])
    rows = rows[np.lexsort((-rows[:, 2], rows[:, 0]))]
    return LabelledRatings(rows=rows.astype(np.int64), kept_users=kept_users,
                           missing_negatives=missing)


def _sample_negatives(
    *, users: np.ndarray, items: np.ndarray, positive: np.ndarray, n_items: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per user, as many items as positives, drawn without replacement from the items the user
    never rated (capped at how many such items exist); also how many the cap cost."""
    n_users = int(users.max()) + 1
    codes = np.unique(users * n_items + items)
    rated_user = codes // n_items
    rated_item = codes % n_items
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rated_user, minlength=n_users), out=indptr[1:])
    n_pos = np.bincount(np.unique(users[positive] * n_items + items[positive]) // n_items,
                        minlength=n_users)
    pool = n_items - np.diff(indptr)
    want = np.minimum(n_pos, pool)
    g, p = sample_per_group(pool_sizes=pool, n_samples=want, rng=rng)
    # The p-th unrated item of user g is p + #{rated r_j : r_j - j <= p}, with j the rank of
    # r_j among the user's rated items (r_j - j is non-decreasing, so a searchsorted answers).
    rank = np.arange(codes.size, dtype=np.int64) - indptr[rated_user]
    keys = rated_user * (n_items + 1) + (rated_item - rank)
    below = np.searchsorted(keys, g * (n_items + 1) + p, side="right") - indptr[g]
    return g, p + below, int((n_pos - want).sum())


__all__ = [
    "DEFAULT_RATINGS_SEED",
    "DEFAULT_RATING_THRESHOLD",
    "Interaction",
    "LabelledRatings",
    "label_ratings",
]
