"""Readers for the rating/KG files kgenrich exports, and the record the recommender trains on.

Formats: RippleNet (``ratings_final.txt|.npy`` rows ``user item label``; ``kg_final.txt`` rows
``head relation tail``) and RecBole atomic files (``.inter``, ``.kg``, ``.link``: tab separated,
first line ``name:type`` headers).  Every loader returns a :class:`RippleData`; every malformed
input raises :class:`~recsys.errors.DataFormatError` naming the file, line and field.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kgenrich.errors import InputError
from kgenrich.kg.io.interactions import InteractionTable, read_interaction_table
from kgenrich.kg.io.recbole import read_atomic
from kgenrich.kg.ratings import label_ratings
from kgenrich.recsys.errors import DataFormatError

logger = logging.getLogger(__name__)

RATING_FIELDS = ("user", "item", "label")
KG_FIELDS = ("head", "relation", "tail")


@dataclass(frozen=True, eq=False)
class RippleData:
    """Labelled interactions plus a KG, with ids already mapped to dense ints.

    ``ratings``: int64 ``[n, 3]`` rows ``(user, item, label)``, label 1 = positive, 0 = sampled
    negative.  ``kg``: int64 ``[m, 3]`` rows ``(head, relation, tail)``; may have ``m == 0``.
    Item ``i`` is KG entity ``i`` (RippleNet's convention), so ``n_entities >= n_items``.
    Counts are ``max id + 1``.  Arrays are read-only.
    """

    ratings: np.ndarray
    kg: np.ndarray
    n_users: int
    n_items: int
    n_entities: int
    n_relations: int
    source: str = ""


@dataclass(frozen=True, eq=False)
class Split:
    """Row indices into ``RippleData.ratings`` for train / validation / test."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def _frozen(array: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(array, dtype=np.int64)
    out.flags.writeable = False
    return out


def make_ripple_data(
    *, ratings: np.ndarray, kg: np.ndarray | None, source: str = "", n_entities: int = 0
) -> RippleData:
    """Validate arrays and wrap them in a :class:`RippleData` (counts derived from max ids).

    ``kg=None`` or an empty array means "no KG".  ``n_entities`` may only raise the derived
    count (useful to keep embedding tables the same size across KG variants).
    """
    r = np.asarray(ratings)
    if r.ndim != 2 or r.shape[1] != 3 or r.shape[0] == 0:
        raise DataFormatError(
            file=source or "<ratings>", line=None, field="row",
            expected="a non-empty [n, 3] array (user, item, label)", got=f"shape {r.shape}",
        )
    k = np.zeros((0, 3), dtype=np.int64) if kg is None else np.asarray(kg)
    if k.size == 0:
        k = np.zeros((0, 3), dtype=np.int64)
    if k.ndim != 2 or k.shape[1] != 3:
        raise DataFormatError(
            file=source or "<kg>", line=None, field="row",
            expected="a [m, 3] array (head, relation, tail)", got=f"shape {k.shape}",
        )
    _check_values(r, fields=RATING_FIELDS, file=source or "<ratings>", first_line=1)
    _check_values(k, fields=KG_FIELDS, file=source or "<kg>", first_line=1)
    n_items = int(r[:, 1].max()) + 1
    kg_max = int(max(k[:, 0].max(), k[:, 2].max())) + 1 if k.shape[0] else 0
    return RippleData(
        ratings=_frozen(r),
        kg=_frozen(k),
        n_users=int(r[:, 0].max()) + 1,
        n_items=n_items,
        n_entities=max(n_items, kg_max, n_entities),
        n_relations=int(k[:, 1].max()) + 1 if k.shape[0] else 0,
        source=source,
    )


def with_kg(data: RippleData, *, kg: np.ndarray | None, label: str = "") -> RippleData:
    """Same ratings, another KG (``None`` = no KG); entity count never shrinks.

    Meant for comparing KG variants on identical interactions and splits.
    """
    out = make_ripple_data(
        ratings=data.ratings, kg=kg, source=data.source, n_entities=data.n_entities
    )
    return dataclasses.replace(out, source=label or data.source)


def _check_values(
    array: np.ndarray, *, fields: tuple[str, ...], file: str, first_line: int
) -> None:
    """Reject non-integer, negative ids and non-binary labels, naming the first bad cell."""
    if array.shape[0] == 0:
        return
    if not np.issubdtype(array.dtype, np.integer):
        as_float = array.astype(np.float64)
        bad = ~np.isfinite(as_float) | (as_float != np.round(as_float))
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataFormatError(
                file=file, line=int(row) + first_line, field=fields[col],
                expected="an integer", got=repr(array[row, col].item()),
            )
    bad = array < 0
    if fields == RATING_FIELDS:
        bad[:, 2] = (array[:, 2] != 0) & (array[:, 2] != 1)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        expected = "0 or 1" if fields[col] == "label" else "a non-negative integer id"
        raise DataFormatError(
            file=file, line=int(row) + first_line, field=fields[col],
            expected=expected, got=repr(array[row, col].item()),
        )


def _read_int_table(path: Path, *, fields: tuple[str, ...]) -> np.ndarray:
    """Parse whitespace-separated integer rows; blank lines are skipped, line numbers kept."""
    rows: list[list[int]] = []
    lines: list[int] = []
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            parts = text.split()
            if not parts:
                continue
            if len(parts) != len(fields):
                raise DataFormatError(
                    file=str(path), line=number, field="row",
                    expected=f"{len(fields)} columns ({' '.join(fields)})",
                    got=f"{len(parts)} columns: {text.strip()!r}",
                )
            values: list[int] = []
            for name, part in zip(fields, parts, strict=True):
                try:
                    values.append(int(part))
                except ValueError as err:
                    raise DataFormatError(
                        file=str(path), line=number, field=name,
                        expected="an integer", got=repr(part),
                    ) from err
            rows.append(values)
            lines.append(number)
    table = np.asarray(rows, dtype=np.int64).reshape(-1, len(fields))
    try:
        _check_values(table, fields=fields, file=str(path), first_line=0)
    except DataFormatError as err:
        # _check_values reports the 0-based row; blank lines make it differ from the line.
        raise DataFormatError(
            file=str(path), line=lines[err.line or 0], field=err.field or "",
            expected=err.expected or "", got=err.got or "",
        ) from err
    return table


def load_ratings(path: str | Path) -> np.ndarray:
    """Read ``ratings_final.txt`` (whitespace separated) or ``ratings_final.npy``.

    Returns int64 ``[n, 3]`` rows ``(user, item, label)``.
    """
    p = Path(path)
    if p.suffix == ".npy":
        try:
            array = np.load(p, allow_pickle=False)
        except ValueError as err:
            raise DataFormatError(
                file=str(p), line=None, field="row", expected="a numeric .npy array", got=str(err)
            ) from err
        if array.ndim != 2 or array.shape[1] != 3:
            raise DataFormatError(
                file=str(p), line=None, field="row",
                expected="a [n, 3] array (user, item, label)", got=f"shape {array.shape}",
            )
        _check_values(array, fields=RATING_FIELDS, file=str(p), first_line=1)
        return array.astype(np.int64)
    return _read_int_table(p, fields=RATING_FIELDS)


def load_kg(path: str | Path) -> np.ndarray:
    """Read ``kg_final.txt``: int64 ``[m, 3]`` rows ``(head, relation, tail)``."""
    return _read_int_table(Path(path), fields=KG_FIELDS)


def load_ripplenet_dir(path: str | Path) -> RippleData:
    """Load a RippleNet data folder: ``ratings_final.npy`` (preferred) or ``.txt``, and
    ``kg_final.txt`` (absent = no KG, logged)."""
    folder = Path(path)
    npy, txt = folder / "ratings_final.npy", folder / "ratings_final.txt"
    ratings_path = npy if npy.exists() else txt
    if not ratings_path.exists():
        raise DataFormatError(
            file=str(folder), line=None, field="ratings_final",
            expected="ratings_final.npy or ratings_final.txt", got="neither file",
        )
    ratings = load_ratings(ratings_path)
    kg_path = folder / "kg_final.txt"
    if kg_path.exists():
        kg: np.ndarray | None = load_kg(kg_path)
    else:
        logger.warning("%s has no kg_final.txt; loading without a KG", folder)
        kg = None
    return make_ripple_data(ratings=ratings, kg=kg, source=str(folder))


# --- RecBole atomic files ------------------------------------------------------------------


def _interactions(path: Path) -> InteractionTable:
    try:
        return read_interaction_table(path)
    except InputError as err:  # reported as this package's error, fields kept
        raise DataFormatError.from_input(err) from err


def _columns(path: Path, names: tuple[str, ...]) -> dict[str, list[tuple[int, str]]]:
    """``{name: [(line, value), ...]}`` of an atomic file's ``names`` columns."""
    try:
        return read_atomic(path).columns(names)
    except InputError as err:
        raise DataFormatError.from_input(err) from err


def load_recbole(
    inter: str | Path,
    kg: str | Path | None = None,
    link: str | Path | None = None,
    *,
    rating_threshold: float,
    seed: int = 0,
) -> RippleData:
    """Convert RecBole atomic files to RippleNet's labelled form, as RippleNet preprocesses.

    * ``.inter`` needs ``user_id`` and ``item_id`` (read by ``kg.io.interactions``); rows are
      labelled by ``kg.ratings.label_ratings``: ``rating >= rating_threshold`` (or no
      ``rating`` column) is a positive, each user with a positive gets as many negatives drawn
      (seeded by ``seed``) from the items the user never rated; users without a positive are
      dropped.  Users and items are numbered in sorted token order; every item in ``.inter``
      is kept, linked to the KG or not.
    * ``.link`` (``item_id``, ``entity_id``) makes item ``i``'s entity entity ``i``; without
      it, KG tokens equal to item tokens are taken to be those items.  Other entities follow
      in sorted token order; relations are numbered in sorted token order.
    * ``.kg`` (``head_id``, ``relation_id``, ``tail_id``) is optional (no KG).
    """
    inter_path = Path(inter)
    table = _interactions(inter_path)
    if not table.users:
        raise DataFormatError(
            file=str(inter_path), line=2, field="row", expected="at least one interaction",
            got="no rows",
        )
    user_names, user_idx = np.unique(np.array(table.users), return_inverse=True)
    item_names, item_idx = np.unique(np.array(table.items), return_inverse=True)
    n_items = int(item_names.size)
    labelled = label_ratings(
        users=user_idx, items=item_idx,
        ratings=None if table.ratings is None else np.array(table.ratings, dtype=np.float64),
        n_items=n_items, rating_threshold=rating_threshold, seed=seed,
    )
    if labelled.rows.shape[0] == 0:
        raise DataFormatError(
            file=str(inter_path), line=None, field="rating",
            expected=f"at least one rating >= {rating_threshold}", got="none",
        )
    ratings = labelled.rows
    user_names = user_names[labelled.kept_users]
    n_pos = int(ratings[:, 2].sum())

    entity_of_token: dict[str, int] = {}
    if link is not None:
        link_path = Path(link)
        lcols = _columns(link_path, ("item_id", "entity_id"))
        item_pos = {name: i for i, name in enumerate(item_names.tolist())}
        entity_line: dict[str, int] = {}
        item_line: dict[int, int] = {}
        for (number, item), (_, entity) in zip(lcols["item_id"], lcols["entity_id"], strict=True):
            if item not in item_pos:
                continue  # a linked item that nobody rated is an ordinary entity
            index = item_pos[item]
            if entity in entity_of_token and entity_of_token[entity] != index:
                raise DataFormatError(
                    file=str(link_path), line=number, field="entity_id",
                    expected="an entity linked to one item only",
                    got=f"{entity!r}, already linked on line {entity_line[entity]}",
                )
            if index in item_line and entity not in entity_of_token:
                raise DataFormatError(
                    file=str(link_path), line=number, field="item_id",
                    expected="an item linked to one entity only",
                    got=f"{item!r}, already linked on line {item_line[index]}",
                )
            entity_of_token[entity] = index
            entity_line.setdefault(entity, number)
            item_line.setdefault(index, number)
    else:
        entity_of_token = {name: i for i, name in enumerate(item_names.tolist())}

    kg_array: np.ndarray | None = None
    if kg is not None:
        kg_path = Path(kg)
        kcols = _columns(kg_path, ("head_id", "relation_id", "tail_id"))
        heads = [v for _, v in kcols["head_id"]]
        tails = [v for _, v in kcols["tail_id"]]
        others = sorted({*heads, *tails} - entity_of_token.keys())
        ids = dict(entity_of_token)
        ids.update({name: n_items + i for i, name in enumerate(others)})
        if heads:
            rel_names, rel_idx = np.unique(
                np.array([v for _, v in kcols["relation_id"]]), return_inverse=True
            )
            kg_array = np.column_stack([
                np.array([ids[h] for h in heads], dtype=np.int64),
                rel_idx.astype(np.int64),
                np.array([ids[t] for t in tails], dtype=np.int64),
            ])
            logger.info(
                "%s: %d triples, %d relations, %d non-item entities",
                kg_path, len(heads), int(rel_names.size), len(others),
            )
    logger.info(
        "%s: %d users, %d items, %d positives, %d negatives",
        inter_path, user_names.size, n_items, n_pos, ratings.shape[0] - n_pos,
    )
    return make_ripple_data(ratings=ratings, kg=kg_array, source=str(inter_path))


def split_indices(
    n_rows: int, *, seed: int, ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)
) -> Split:
    """Random train/valid/test split of ``n_rows`` rows, as RippleNet does it.

    Validation and test get ``int(n_rows * ratio)`` rows each; training gets the rest (so
    ``ratios[0]`` is implied).  The same ``(n_rows, seed, ratios)`` always gives the same split,
    whatever KG is used later.  Index order is random (kept: batch-wise metrics depend on it).
    """
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {ratios}")
    n_valid = int(n_rows * ratios[1])
    n_test = int(n_rows * ratios[2])
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED])).permutation(n_rows)
    return Split(
        train=perm[n_valid + n_test:],
        valid=perm[:n_valid],
        test=perm[n_valid:n_valid + n_test],
    )
