"""Triples with string ids -> the int KG rows the recommenders train on (item ``i`` is entity
``i``, other entities follow in sorted order, relations numbered in sorted order)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class IndexedKG:
    """``rows``: int64 ``[m, 3]`` (head, relation, tail); ``entities[j]`` names entity
    ``n_items + j``; ``relations[r]`` names relation ``r``; ``skipped`` counts triples whose head
    is not a known item (a fact about an item nobody rated)."""

    rows: np.ndarray
    entities: tuple[str, ...]
    relations: tuple[str, ...]
    n_items: int
    skipped: int

    @property
    def n_entities(self) -> int:
        return self.n_items + len(self.entities)


def index_triples(
    triples: Iterable[tuple[str, str, str]], *, item_index: Mapping[str, int]
) -> IndexedKG:
    """Map ``(head, relation, tail)`` ids to ints: an id in ``item_index`` (entity id -> item
    int, ints ``0..n_items-1``) is that item; other tails get ``n_items + rank``."""
    n_items = max(item_index.values(), default=-1) + 1
    given = list(triples)
    kept = [t for t in given if t[0] in item_index]
    others = sorted({t for _, _, t in kept if t not in item_index})
    ids = {**{e: n_items + j for j, e in enumerate(others)}, **item_index}
    relations = sorted({r for _, r, _ in kept})
    rel = {r: j for j, r in enumerate(relations)}
    rows = np.asarray([(ids[h], rel[r], ids[t]) for h, r, t in kept], dtype=np.int64)
    return IndexedKG(rows=rows.reshape(-1, 3), entities=tuple(others),
                     relations=tuple(relations), n_items=n_items, skipped=len(given) - len(kept))


__all__ = ["IndexedKG", "index_triples"]
