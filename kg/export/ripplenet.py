"""Write a RippleNet data directory: `kg_final.txt` (head relation tail ints),
`item_index2entity_id.txt` (catalog item id -> entity int), `ratings_final.txt` when
interactions are given, and `entity_index.tsv` / `relation_index.tsv` / `user_index.tsv` that map
the ints back to kgenrich ids (`read_seed(..., format="ripplenet")` uses them).

Indexing follows RippleNet: items take entity ints 0..n_items-1 (in `items` order, or sorted
item ids), then the other entities the triples mention, sorted; relations are numbered in sorted
order. Items without a triple are dropped, with their interactions, as the original
`preprocess.py` keeps only items in the KG: every entity int then occurs in `kg_final.txt`, so
RippleNet's loader, which sizes its entity table as `len(set(heads) | set(tails))`, covers them
all. Ratings are labelled by `kg.ratings.label_ratings` (RippleNet's `preprocess.py` rule:
a rating >= `rating_threshold`, or no rating, is a positive; each user with positives gets as
many negatives, seeded, from the items they did not rate at all); users are numbered in natural
order of their ids, among those with a positive. The directory is
replaced as a whole (`atomic_dir`), so no stale file from an earlier export survives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from kgenrich.kg.atomic import atomic_dir
from kgenrich.kg.export._common import check_token, entity_index, item_id_of, natural_key
from kgenrich.kg.ids import item_entity_id
from kgenrich.kg.ratings import (
    DEFAULT_RATING_THRESHOLD,
    DEFAULT_RATINGS_SEED,
    Interaction,
    label_ratings,
)
from kgenrich.kg.records import Entity, Triple

logger = logging.getLogger(__name__)


def write_ripplenet(
    path: str | Path,
    *,
    entities: Iterable[Entity],
    triples: Iterable[Triple],
    items: Sequence[str] | None = None,
    interactions: Iterable[Interaction] | None = None,
    rating_threshold: float = DEFAULT_RATING_THRESHOLD,
    seed: int = DEFAULT_RATINGS_SEED,
) -> dict[str, int]:
    """Write the RippleNet files into directory `path` (see the module docstring).

    `items` are catalog item ids, in the order that fixes their ints; by default every item
    entity (`item/<id>`) among `entities` and the triples, sorted. Items no triple mentions are
    left out, and so are their interactions. `rating_threshold` is RippleNet's (4 for
    MovieLens, 0 for Book-Crossing). Returns counts of what was written and of what was
    dropped: `dropped_items`, and with interactions `dropped_interactions` (those of dropped
    items) and `skipped_interactions` (items not in `items` at all).
    """
    keys = list(dict.fromkeys(t.key for t in triples))
    known = entity_index(entities)
    mentioned = {e for h, _, t in keys for e in (h, t)}
    if items is None:
        candidates = [*known, *mentioned]
        items = sorted({i for e in candidates if (i := item_id_of(e)) is not None},
                       key=natural_key)
    given = list(dict.fromkeys(items))
    item_list = [i for i in given if item_entity_id(i) in mentioned]
    dropped = set(given) - set(item_list)
    if dropped:
        logger.warning("%d items have no triple; left out of the RippleNet files with their "
                       "interactions, as RippleNet's preprocess.py does", len(dropped))
    entity_ids: dict[str, int] = {item_entity_id(i): n for n, i in enumerate(item_list)}
    others = {e for e in mentioned if e not in entity_ids}
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
        "dropped_items": len(dropped),
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
            given_rows = list(interactions)
            kept_rows = [x for x in given_rows if x.item not in dropped]
            rows, users, stats = ripplenet_ratings(
                kept_rows,
                item_index={i: n for n, i in enumerate(item_list)},
                rating_threshold=rating_threshold,
                seed=seed,
            )
            _write_lines(out / "ratings_final.txt", (f"{u}\t{i}\t{lab}\n" for u, i, lab in rows))
            _write_index(out / "user_index.tsv", "user", users)
            counts.update(stats)
            counts["dropped_interactions"] = len(given_rows) - len(kept_rows)
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


def ripplenet_ratings(
    interactions: Iterable[Interaction],
    *,
    item_index: Mapping[str, int],
    rating_threshold: float,
    seed: int,
) -> tuple[list[tuple[int, int, int]], dict[str, int], dict[str, int]]:
    """The `ratings_final.txt` rows `(user, item, label)` of `interactions`, labelled by
    `kg.ratings.label_ratings`, with the user index (id -> int) and counts.

    `item_index` maps item ids to their ints; interactions with other items are dropped and
    counted. Users are numbered in natural order of their ids, among those with a positive.
    """
    known: list[Interaction] = []
    unknown_items = 0
    for x in interactions:
        if x.item in item_index:
            known.append(x)
        else:
            unknown_items += 1  # RippleNet drops ratings of items outside the KG's item list
    names = sorted({x.user for x in known}, key=natural_key)
    user_of = {name: n for n, name in enumerate(names)}
    labelled = label_ratings(
        users=np.array([user_of[x.user] for x in known], dtype=np.int64),
        items=np.array([item_index[x.item] for x in known], dtype=np.int64),
        ratings=np.array(
            [np.nan if x.rating is None else x.rating for x in known], dtype=np.float64
        ),
        n_items=len(item_index),
        rating_threshold=rating_threshold,
        seed=seed,
    )
    users = {names[int(u)]: n for n, u in enumerate(labelled.kept_users)}
    rows = [(int(u), int(i), int(lab)) for u, i, lab in labelled.rows]
    if unknown_items:
        logger.warning("%d interactions name items outside the item list; skipped", unknown_items)
    if labelled.missing_negatives:
        logger.warning(
            "%d negatives missing: some users rated almost every item", labelled.missing_negatives
        )
    stats = {
        "users": len(users),
        "ratings": len(rows),
        "positives": sum(1 for r in rows if r[2] == 1),
        "skipped_interactions": unknown_items,
        "missing_negatives": labelled.missing_negatives,
    }
    return rows, users, stats


__all__ = ["Interaction", "ripplenet_ratings", "write_ripplenet"]
