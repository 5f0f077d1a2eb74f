"""Ratings and KG of a kgenrich RippleNet export as a `RippleData`.

`data_dir` is a RippleNet folder (`ratings_final.(txt|npy)` + `kg_final.txt`) or a kgenrich run
folder holding one under `ripplenet/`. An export written without interactions has no
`ratings_final.txt`; then `interactions` (a RecBole `.inter` or CSV/TSV, read by
`kg.io.interactions`) supplies them, labelled by the exporter's own rule
(`kg.export.ripplenet.ripplenet_ratings`) with the export's item order, so item ints match
`kg_final.txt`. Bad input raises `DataFormatError` naming file, line and field.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kgenrich.kg.export.ripplenet import ripplenet_ratings
from kgenrich.kg.io.interactions import read_interactions
from kgenrich.kg.ratings import DEFAULT_RATING_THRESHOLD, DEFAULT_RATINGS_SEED
from kgenrich.recsys.data import RippleData, load_kg, load_ripplenet_dir, make_ripple_data
from kgenrich.recsys.errors import DataFormatError


def ripplenet_dir(data_dir: str | Path) -> Path:
    """The RippleNet folder inside a kgenrich export (`<run>/ripplenet/`), or `data_dir`."""
    folder = Path(data_dir)
    sub = folder / "ripplenet"
    return sub if (sub / "kg_final.txt").exists() else folder


def load_export(
    data_dir: str | Path,
    *,
    interactions: str | Path | None = None,
    rating_threshold: float = DEFAULT_RATING_THRESHOLD,
    seed: int = DEFAULT_RATINGS_SEED,
) -> RippleData:
    """Ratings and KG of a RippleNet folder or kgenrich export (see the module docstring)."""
    folder = ripplenet_dir(data_dir)
    has_ratings = any((folder / f"ratings_final.{ext}").exists() for ext in ("txt", "npy"))
    if has_ratings or interactions is None:
        return load_ripplenet_dir(folder)
    index = folder / "item_index2entity_id.txt"
    if not index.exists():
        raise DataFormatError(file=str(folder), line=None, field="item_index2entity_id",
                              expected="item_index2entity_id.txt next to kg_final.txt",
                              got="no such file")
    items = _item_order(index)
    rows, _, _ = ripplenet_ratings(
        read_interactions(Path(interactions)),
        item_index={item: n for n, item in enumerate(items)},
        rating_threshold=rating_threshold,
        seed=seed,
    )
    ratings = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    kg = load_kg(folder / "kg_final.txt")
    return make_ripple_data(ratings=ratings, kg=kg, source=str(folder))


def _item_order(path: Path) -> list[str]:
    """Item ids of `item_index2entity_id.txt` by their entity int (0..n-1)."""
    pairs: list[tuple[int, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            pairs.append((int(parts[1]), parts[0]))
        except (IndexError, ValueError) as err:
            raise DataFormatError(file=str(path), line=number, field="entity_id",
                                  expected="item<TAB>int", got=repr(line)) from err
    pairs.sort()
    if [n for n, _ in pairs] != list(range(len(pairs))):
        raise DataFormatError(file=str(path), line=None, field="entity_id",
                              expected="items numbered 0..n-1", got="gaps or duplicates")
    return [item for _, item in pairs]


__all__ = ["load_export", "ripplenet_dir"]
