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

from kgenrich.recsys.errors import DataFormatError
from kgenrich.recsys.sampling import sample_per_group

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


def _read_atomic(path: Path, *, required: tuple[str, ...]) -> dict[str, list[tuple[int, str]]]:
    """Read a RecBole atomic file into ``{field: [(line, value), ...]}`` for ``required``."""
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().rstrip("\r\n")
        names: list[str] = []
        for column in header.split("\t"):
            name, sep, ftype = column.partition(":")
            if not sep or not name or not ftype:
                raise DataFormatError(
                    file=str(path), line=1, field=column or "<empty>",
                    expected="a 'name:type' header column", got=repr(column),
                )
            names.append(name)
        for name in required:
            if name not in names:
                raise DataFormatError(
                    file=str(path), line=1, field=name,
                    expected=f"a header column named {name!r}", got=repr(header),
                )
        index = {name: names.index(name) for name in required}
        out: dict[str, list[tuple[int, str]]] = {name: [] for name in required}
        for number, text in enumerate(handle, start=2):
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            parts = text.split("\t")
            if len(parts) != len(names):
                raise DataFormatError(
                    file=str(path), line=number, field="row",
                    expected=f"{len(names)} tab-separated columns", got=f"{len(parts)} columns",
                )
            for name, col in index.items():
                value = parts[col].strip()
                if not value:
                    raise DataFormatError(
                        file=str(path), line=number, field=name,
                        expected="a non-empty value", got="''",
                    )
                out[name].append((number, value))
    return out


def _floats(path: Path, field: str, cells: list[tuple[int, str]]) -> np.ndarray:
    values = np.empty(len(cells), dtype=np.float64)
    for i, (number, text) in enumerate(cells):
        try:
            values[i] = float(text)
        except ValueError as err:
            raise DataFormatError(
                file=str(path), line=number, field=field, expected="a number", got=repr(text)
            ) from err
        if not np.isfinite(values[i]):
            raise DataFormatError(
                file=str(path), line=number, field=field, expected="a finite number",
                got=repr(text),
            )
    return values


def _sample_negatives(
    *, users: np.ndarray, items: np.ndarray, positive: np.ndarray, n_items: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """RippleNet's negatives: per user, as many items as positives, drawn without replacement
    from the items the user never rated (capped at how many such items exist)."""
    n_users = int(users.max()) + 1
    codes = np.unique(users * n_items + items)
    rated_user = codes // n_items
    rated_item = codes % n_items
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rated_user, minlength=n_users), out=indptr[1:])
    n_pos = np.bincount(np.unique(users[positive] * n_items + items[positive]) // n_items,
                        minlength=n_users)
    pool = n_items - np.diff(indptr)
    g, p = sample_per_group(pool_sizes=pool, n_samples=np.minimum(n_pos, pool), rng=rng)
    # The p-th unrated item of user g is p + #{rated r_j : r_j - j <= p}, with j the rank of
    # r_j among the user's rated items (r_j - j is non-decreasing, so a searchsorted answers).
    rank = np.arange(codes.size, dtype=np.int64) - indptr[rated_user]
    keys = rated_user * (n_items + 1) + (rated_item - rank)
    below = np.searchsorted(keys, g * (n_items + 1) + p, side="right") - indptr[g]
    return g, p + below


def load_recbole(
    inter: str | Path,
    kg: str | Path | None = None,
    link: str | Path | None = None,
    *,
    positive_threshold: float,
    seed: int = 0,
) -> RippleData:
    """Convert RecBole atomic files to RippleNet's labelled form, as RippleNet preprocesses.

    * ``.inter`` needs ``user_id`` and ``item_id``; rows with ``rating >= positive_threshold``
      are positives (without a ``rating`` column every row is positive).  Each user with a
      positive gets as many negatives, drawn (seeded by ``seed``) from the items the user never
      rated; users without a positive are dropped.  Users and items are numbered in sorted
      token order; every item in ``.inter`` is kept, linked to the KG or not.
    * ``.link`` (``item_id``, ``entity_id``) makes item ``i``'s entity entity ``i``; without
      it, KG tokens equal to item tokens are taken to be those items.  Other entities follow
      in sorted token order; relations are numbered in sorted token order.
    * ``.kg`` (``head_id``, ``relation_id``, ``tail_id``) is optional (no KG).
    """
    inter_path = Path(inter)
    with inter_path.open(encoding="utf-8") as handle:
        has_rating = "rating" in [c.partition(":")[0] for c in handle.readline().split("\t")]
    required = ("user_id", "item_id", "rating") if has_rating else ("user_id", "item_id")
    cols = _read_atomic(inter_path, required=required)
    if not cols["user_id"]:
        raise DataFormatError(
            file=str(inter_path), line=2, field="row", expected="at least one interaction",
            got="no rows",
        )
    user_tok = np.array([v for _, v in cols["user_id"]])
    item_tok = np.array([v for _, v in cols["item_id"]])
    if has_rating:
        positive = _floats(inter_path, "rating", cols["rating"]) >= positive_threshold
    else:
        positive = np.ones(user_tok.size, dtype=bool)
    if not positive.any():
        raise DataFormatError(
            file=str(inter_path), line=None, field="rating",
            expected=f"at least one rating >= {positive_threshold}", got="none",
        )

    item_names, item_idx = np.unique(item_tok, return_inverse=True)
    user_names = np.unique(user_tok[positive])
    keep = np.isin(user_tok, user_names)
    user_idx = np.searchsorted(user_names, user_tok[keep])
    item_idx, positive = item_idx[keep], positive[keep]
    n_items = int(item_names.size)
    neg_users, neg_items = _sample_negatives(
        users=user_idx, items=item_idx, positive=positive, n_items=n_items,
        rng=np.random.default_rng(seed),
    )
    pos_codes = np.unique(user_idx[positive] * n_items + item_idx[positive])
    ratings = np.concatenate([
        np.stack([pos_codes // n_items, pos_codes % n_items, np.ones_like(pos_codes)], axis=1),
        np.stack([neg_users, neg_items, np.zeros_like(neg_users)], axis=1),
    ])
    ratings = ratings[np.lexsort((-ratings[:, 2], ratings[:, 0]))]

    entity_of_token: dict[str, int] = {}
    if link is not None:
        link_path = Path(link)
        lcols = _read_atomic(link_path, required=("item_id", "entity_id"))
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
        kcols = _read_atomic(kg_path, required=("head_id", "relation_id", "tail_id"))
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
        inter_path, user_names.size, n_items, pos_codes.size, neg_users.size,
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
