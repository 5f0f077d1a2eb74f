"""The new-item protocol (issue 10): a seeded split in which some items have no training row, and
the KG variants compared on it. Pure functions of their inputs and seed; nothing is trained here.

Split: a seeded ``new_fraction`` of the items with at least ``min_positives`` positive rows
become *new items*; every row of a new item (positives and sampled negatives alike) leaves
training and goes to validation or test (``new_valid_share`` of them to validation); the other
rows follow RippleNet's random 6:2:2 split (:func:`recsys.data.split_indices`'s rule).

KG variants on one split: (a) no KG, (b) the full KG, (c) the hidden KG: for new items a seeded
``hide_fraction`` of their (item, relation) groups is removed whole, and the removed triples are
returned as the answer key; (r) a knowledge-free control with the same degrees, over the whole
KG, and (r_new) the same at new items only (warm items keep their true links).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kgenrich.recsys.data import Split

_SPLIT_STREAM = 0x4E45  # "NE": keeps this split's draws apart from split_indices' stream
_HIDE_STREAM = 0x4849  # "HI"
_SHUFFLE_STREAM = 0x5348  # "SH"


@dataclass(frozen=True, eq=False)
class NewItemSplit:
    """Row indices of a new-item split and which items are new.

    ``split``: train/valid/test row indices into the ratings (no new item's row is in train).
    ``new_items``: sorted item ids that are new; ``eligible_items``: sorted item ids that had at
    least ``min_positives`` positives (the pool the new items were drawn from).
    """

    split: Split
    new_items: np.ndarray
    eligible_items: np.ndarray

    def is_new(self, items: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``items`` are new items."""
        return np.isin(np.asarray(items), self.new_items)


@dataclass(frozen=True, eq=False)
class HiddenKG:
    """The KG with some new-item (item, relation) groups removed, and what was removed.

    ``kept``: the KG rows that remain; ``hidden``: the removed rows (the answer key), both int64
    ``[m, 3]`` in the input's row order; ``hidden_groups``: int64 ``[g, 2]`` (item, relation),
    sorted; ``n_groups``: how many new-item groups there were to hide from.
    """

    kept: np.ndarray
    hidden: np.ndarray
    hidden_groups: np.ndarray
    n_groups: int


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def new_item_split(
    ratings: np.ndarray,
    *,
    seed: int,
    new_fraction: float = 0.2,
    min_positives: int = 5,
    ratios: tuple[float, float, float] = (0.6, 0.2, 0.2),
    new_valid_share: float = 0.5,
) -> NewItemSplit:
    """Split labelled ``ratings`` rows ``(user, item, label)`` by the new-item protocol.

    ``round(new_fraction * n_eligible)`` items are drawn (seeded) from the items with
    ``>= min_positives`` positives.  Their rows are shuffled and ``int(n * new_valid_share)`` go
    to validation, the rest to test.  The remaining rows are split as RippleNet does: a seeded
    permutation, ``int(n * ratios[1])`` to validation, ``int(n * ratios[2])`` to test, the rest
    to train.  Same inputs and seed, same split.
    """
    r = np.asarray(ratings)
    if r.ndim != 2 or r.shape[1] != 3:
        raise ValueError(f"ratings must be [n, 3] (user, item, label), got shape {r.shape}")
    if not 0.0 <= new_fraction <= 1.0 or not 0.0 <= new_valid_share <= 1.0:
        raise ValueError("new_fraction and new_valid_share must lie in [0, 1]")
    if len(ratios) != 3 or any(x < 0 for x in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {ratios}")
    items = r[:, 1].astype(np.int64)
    n_items = int(items.max()) + 1 if items.size else 0
    positives = np.bincount(items[r[:, 2] == 1], minlength=n_items)
    eligible = np.flatnonzero(positives >= min_positives)
    rng = _rng(seed, _SPLIT_STREAM)
    n_new = int(round(new_fraction * eligible.size))
    new_items = np.sort(rng.choice(eligible, size=n_new, replace=False)) if n_new else eligible[:0]

    new_mask = np.isin(items, new_items)
    new_rows = rng.permutation(np.flatnonzero(new_mask))
    n_new_valid = int(new_rows.size * new_valid_share)
    warm_rows = rng.permutation(np.flatnonzero(~new_mask))
    n_valid = int(warm_rows.size * ratios[1])
    n_test = int(warm_rows.size * ratios[2])
    split = Split(
        train=warm_rows[n_valid + n_test:],
        valid=np.concatenate([warm_rows[:n_valid], new_rows[:n_new_valid]]),
        test=np.concatenate([warm_rows[n_valid:n_valid + n_test], new_rows[n_new_valid:]]),
    )
    return NewItemSplit(split=split, new_items=new_items.astype(np.int64),
                        eligible_items=eligible.astype(np.int64))


def hide_groups(
    kg: np.ndarray, *, items: np.ndarray, hide_fraction: float, seed: int
) -> HiddenKG:
    """Remove a seeded ``hide_fraction`` of the (head, relation) groups whose head is in
    ``items``: exactly ``round(hide_fraction * n_groups)`` groups, each removed whole."""
    if not 0.0 <= hide_fraction <= 1.0:
        raise ValueError(f"hide_fraction must lie in [0, 1], got {hide_fraction}")
    k = np.asarray(kg, dtype=np.int64).reshape(-1, 3)
    at_items = np.isin(k[:, 0], np.asarray(items, dtype=np.int64))
    groups = np.unique(k[at_items][:, :2], axis=0)
    n_hide = int(round(hide_fraction * groups.shape[0]))
    pick = _rng(seed, _HIDE_STREAM).choice(groups.shape[0], size=n_hide, replace=False)
    hidden_groups = groups[np.sort(pick)]
    # A group's code is unique per (head, relation); relations are small ints.
    width = int(k[:, 1].max()) + 1 if k.size else 1
    hidden_mask = np.isin(k[:, 0] * width + k[:, 1],
                          hidden_groups[:, 0] * width + hidden_groups[:, 1])
    return HiddenKG(kept=k[~hidden_mask], hidden=k[hidden_mask],
                    hidden_groups=hidden_groups.reshape(-1, 2), n_groups=int(groups.shape[0]))


def shuffle_tails(kg: np.ndarray, *, seed: int, heads: np.ndarray | None = None) -> np.ndarray:
    """The knowledge-free control: every tail is swapped with a random tail of the same
    relation (a permutation of the tails within each relation), among the rows whose head is in
    ``heads`` (``None``: all rows); other rows are unchanged.

    Each head keeps its number of triples per relation, each tail its degree per relation, and
    the entity set stays the same, so a model sees as many neighbours and parameters as with the
    real KG; only which item links to which entity is random.
    """
    k = np.array(kg, dtype=np.int64).reshape(-1, 3)
    rng = _rng(seed, _SHUFFLE_STREAM)
    chosen = np.ones(k.shape[0], dtype=bool) if heads is None else np.isin(k[:, 0], heads)
    for rel in np.unique(k[chosen, 1]):
        rows = np.flatnonzero(chosen & (k[:, 1] == rel))
        k[rows, 2] = k[rng.permutation(rows), 2]
    return k


def kg_variants(
    kg: np.ndarray, *, new_items: np.ndarray, hide_fraction: float, seed: int
) -> tuple[dict[str, np.ndarray], HiddenKG]:
    """The KG of every variant on one split, and the hidden variant's answer key.

    ``"a"``: no KG (empty), ``"b"``: ``kg``, ``"c"``: ``kg`` with new items' groups hidden,
    ``"r"``: :func:`shuffle_tails` of ``kg`` (same degrees as ``"b"``, no knowledge);
    ``"r_new"``: the new items' triples shuffled among themselves, the rest as ``"b"``.
    """
    k = np.asarray(kg, dtype=np.int64).reshape(-1, 3)
    hidden = hide_groups(k, items=new_items, hide_fraction=hide_fraction, seed=seed)
    return {
        "a": np.zeros((0, 3), dtype=np.int64),
        "b": k,
        "c": hidden.kept,
        "r": shuffle_tails(k, seed=seed),
        "r_new": shuffle_tails(k, seed=seed, heads=new_items),
    }, hidden


__all__ = [
    "HiddenKG",
    "NewItemSplit",
    "hide_groups",
    "kg_variants",
    "new_item_split",
    "shuffle_tails",
]
