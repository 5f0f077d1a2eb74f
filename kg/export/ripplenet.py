"""Write a RippleNet data directory: `kg_final.txt` (head relation tail ints),
`item_index2entity_id.txt` (catalog item id -> entity int), `ratings_final.txt` when
interactions are given, and `entity_index.tsv` / `relation_index.tsv` / `user_index.tsv` that map
the ints back to kgenrich ids (`read_seed(..., format="ripplenet")` uses them).

Indexing follows RippleNet: items take entity ints 0..n_items-1 (in `items` order, or sorted
item ids), then the other entities the triples mention, sorted; relations are numbered in sorted
order. Ratings follow RippleNet's `preprocess.py`: a rating >= `rating_threshold` (or no rating:
implicit feedback) is a positive; each user with positives gets as many negatives, drawn without
replacement from the items they did not rate at all, with a seeded RNG. The directory is
replaced as a whole (`atomic_dir`), so no stale file from an earlier export survives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from kgenrich.kg.atomic import atomic_dir
from kgenrich.kg.export._common import check_token, entity_index, item_id_of, natural_key
from kgenrich.kg.ids import item_entity_id
from kgenrich.kg.records import Entity, Triple

logger = logging.getLogger(__name__)


class Interaction(BaseModel):
    """One user-item interaction; `rating` None means implicit feedback (a positive)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str
    item: str
    rating: float | None = None


def write_ripplenet(
    path: str | Path,
    *,
    entities: Iterable[Entity],
    triples: Iterable[Triple],
    items: Sequence[str] | None = None,
    interactions: Iterable[Interaction] | None = None,
    rating_threshold: float = 4.0,
    seed: int = 0,
) -> dict[str, int]:
    """Write the RippleNet files into directory `path` (see the module docstring).

    `items` are catalog item ids, in the order that fixes their ints; by default every item
    entity (`item/<id>`) among `entities` and the triples, sorted. `rating_threshold` is
    RippleNet's (4 for MovieLens, 0 for Book-Crossing). Returns counts of what was written.
    """
    keys = list(dict.fromkeys(t.key for t in triples))
    known = entity_index(entities)
    if items is None:
        mentioned = [*known, *(e for h, _, t in keys for e in (h, t))]
        items = sorted({i for e in mentioned if (i := item_id_of(e)) is not None}, key=natural_key)
    item_list = list(dict.fromkeys(items))
    entity_ids: dict[str, int] = {item_entity_id(i): n for n, i in enumerate(item_list)}
    others = {e for h, _, t in keys for e in (h, t) if e not in entity_ids}
    stray_items = sum(1 for e in others if item_id_of(e) is not None)
    if stray_items:
        logger.warning(
            "%d item entities are not in `items`; indexed as plain entities", stray_items
        )
    for e in sorted(others, key=natural_key):
        entity_ids[e] = len(entity_ids)
    relation_ids = {r: n for n, r in enumerate(sorted({r for _, r, _ in keys}))}
    counts = {
        "items": len(item_list),
        "entities": len(entity_ids),
        "relations": len(relation_ids),
        "triples": len(keys),
    }
    with atomic_dir(path) as out:
        _write_lines(
            out / "kg_final.txt",
            (f"{entity_ids[h]}\t{relation_ids[r]}\t{entity_ids[t]}\n" for h, r, t in keys),
        )
        _write_lines(
            out / "item_index2entity_id.txt",
            (
                f"{check_token(i, what='item id', file='item_index2entity_id.txt')}\t{n}\n"
                for n, i in enumerate(item_list)
            ),
        )
        _write_index(out / "entity_index.tsv", "entity_id", entity_ids)
        _write_index(out / "relation_index.tsv", "relation", relation_ids)
        if interactions is not None:
            rows, users, stats = _ratings(
                interactions,
                item_index={i: n for n, i in enumerate(item_list)},
                threshold=rating_threshold,
                seed=seed,
            )
            _write_lines(out / "ratings_final.txt", (f"{u}\t{i}\t{lab}\n" for u, i, lab in rows))
            _write_index(out / "user_index.tsv", "user", users)
            counts.update(stats)
    logger.info("wrote RippleNet files to %s: %s", path, counts)
    return counts


def _write_lines(file: Path, lines: Iterable[str]) -> None:
    with file.open("w", encoding="utf-8", newline="") as handle:
        handle.writelines(lines)


def _write_index(file: Path, name: str, index: dict[str, int]) -> None:
    def rows() -> Iterable[str]:
        yield f"index\t{name}\n"
        for value, n in index.items():
            yield f"{n}\t{check_token(value, what=name, file=file.name)}\n"

    _write_lines(file, rows())


def _ratings(
    interactions: Iterable[Interaction],
    *,
    item_index: dict[str, int],
    threshold: float,
    seed: int,
) -> tuple[list[tuple[int, int, int]], dict[str, int], dict[str, int]]:
    positives: dict[str, set[int]] = {}
    negatives: dict[str, set[int]] = {}
    unknown_items = 0
    for x in interactions:
        item = item_index.get(x.item)
        if item is None:
            unknown_items += 1  # RippleNet drops ratings of items outside the KG's item list
            continue
        positive = x.rating is None or x.rating >= threshold
        (positives if positive else negatives).setdefault(x.user, set()).add(item)
        positives.setdefault(x.user, set())
    rng = np.random.default_rng(seed)
    n_items = len(item_index)
    users: dict[str, int] = {}
    rows: list[tuple[int, int, int]] = []
    short = 0
    for user in sorted(positives, key=natural_key):
        pos = positives[user]
        if not pos:
            continue  # only low ratings: RippleNet has no positive to pair negatives with
        u = users.setdefault(user, len(users))
        rows.extend((u, i, 1) for i in sorted(pos))
        free = np.ones(n_items, dtype=bool)
        free[list(pos)] = False
        free[list(negatives.get(user, ()))] = False
        pool = np.flatnonzero(free)
        k = min(len(pos), pool.size)
        short += len(pos) - k
        rows.extend((u, int(i), 0) for i in np.sort(rng.choice(pool, size=k, replace=False)))
    if unknown_items:
        logger.warning("%d interactions name items outside the item list; skipped", unknown_items)
    if short:
        logger.warning("%d negatives missing: some users rated almost every item", short)
    stats = {
        "users": len(users),
        "ratings": len(rows),
        "positives": sum(1 for r in rows if r[2] == 1),
        "skipped_interactions": unknown_items,
        "missing_negatives": short,
    }
    return rows, users, stats
