"""Write a RecBole dataset folder: `<dataset>.kg` (head_id relation_id tail_id), `<dataset>.link`
(item_id entity_id) and, given interactions, `<dataset>.inter`, tab-separated with `name:type`
headers. RecBole opens `<data_path>/<dataset>/<dataset>.inter`, so callers pass that folder.

Tokens are kgenrich entity ids and relation names, so `read_seed(..., format="recbole")` reads
them back to the same triples. `.link` lists only items a triple mentions: RecBole's link filter
drops the interactions of every item without a linked entity in the KG, and the counts say how
many that is. The files are written with per-file atomic replaces (all complete before any is
replaced), not by replacing the folder, so a `.inter` from an earlier export survives an export
without interactions.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

from kgenrich.kg.atomic import atomic_write
from kgenrich.kg.export._common import check_token, entity_index, item_id_of, natural_key
from kgenrich.kg.io.interactions import InteractionTable
from kgenrich.kg.records import Entity, Triple

logger = logging.getLogger(__name__)

KG_HEADER = "head_id:token\trelation_id:token\ttail_id:token\n"
LINK_HEADER = "item_id:token\tentity_id:token\n"


def write_recbole(
    path: str | Path,
    *,
    entities: Iterable[Entity],
    triples: Iterable[Triple],
    dataset: str | None = None,
    interactions: InteractionTable | None = None,
) -> dict[str, int]:
    """Write `<path>/<dataset>.kg`, `.link` and, given `interactions`, `.inter` (dataset
    defaults to the folder's name).

    Duplicate (head, relation, tail) keys are written once. Every item entity (`item/<id>`) a
    triple mentions gets a link row; item entities without a triple get none and are counted
    as `dropped_items`. A RecBole `.inter` is copied as given; any other interactions file is
    converted to RecBole's columns (`inter_rows`). Returns triple and link counts and, with
    interactions, `dropped_interactions`: rows whose item has no link row, which RecBole drops.
    """
    folder = Path(path)
    name = dataset or folder.name
    check_token(name, what="dataset name", file=str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    kg_file, link_file = folder / f"{name}.kg", folder / f"{name}.link"
    inter_file = folder / f"{name}.inter"
    rows: dict[tuple[str, str, str], None] = {}
    for t in triples:
        for value, what in ((t.head, "head"), (t.relation, "relation"), (t.tail, "tail")):
            check_token(value, what=what, file=str(kg_file))
        rows.setdefault(t.key)
    mentioned = {e for h, _, t in rows for e in (h, t)}
    items = sorted({i for i in mentioned if item_id_of(i) is not None}, key=natural_key)
    unlinked = {i for i in entity_index(entities) if item_id_of(i) is not None} - mentioned
    counts = {"triples": len(rows), "links": len(items), "dropped_items": len(unlinked)}
    if unlinked:
        logger.warning("%d items have no triple; left out of %s (RecBole drops their "
                       "interactions)", len(unlinked), link_file)
    linked = {item_id_of(i) for i in items}
    with contextlib.ExitStack() as stack:
        kg = stack.enter_context(atomic_write(kg_file))
        link = stack.enter_context(atomic_write(link_file))
        kg.write(KG_HEADER)
        kg.writelines(f"{h}\t{r}\t{t}\n" for h, r, t in rows)
        link.write(LINK_HEADER)
        for entity_id in items:
            item = check_token(item_id_of(entity_id) or "", what="item id", file=str(link_file))
            link.write(f"{item}\t{entity_id}\n")
        if interactions is not None:
            inter = stack.enter_context(atomic_write(inter_file, mode="wb"))
            inter.write(_inter_bytes(interactions, file=str(inter_file)))
            dropped = sum(1 for item in interactions.items if item not in linked)
            counts.update(inter_rows=len(interactions.items), dropped_interactions=dropped)
    if counts.get("dropped_interactions"):
        logger.warning("%d of %d interactions name items without a .link row (no triple, or "
                       "not in the graph); RecBole's link filter drops them",
                       counts["dropped_interactions"], counts["inter_rows"])
    logger.info("wrote RecBole dataset %r to %s: %s", name, folder, counts)
    return counts


def _inter_bytes(table: InteractionTable, *, file: str) -> bytes:
    """The `.inter` file for `table`: its source file's bytes if that is a RecBole `.inter`,
    else RecBole columns built from the table."""
    source = Path(table.file)
    if source.suffix.lower() == ".inter":
        return source.read_bytes()
    return "".join(_inter_lines(table, file=file)).encode("utf-8")


def _inter_lines(table: InteractionTable, *, file: str) -> Iterator[str]:
    columns: list[tuple[str, Iterable[str]]] = [
        ("user_id:token", (check_token(u, what="user id", file=file) for u in table.users)),
        ("item_id:token", (check_token(i, what="item id", file=file) for i in table.items)),
    ]
    if table.ratings is not None:
        columns.append(("rating:float", (_number(r) for r in table.ratings)))
    if table.timestamps is not None:
        stamps = [_float_or_none(s) for s in table.timestamps]
        if all(s is not None for s in stamps):
            columns.append(("timestamp:float", (_number(s or 0.0) for s in stamps)))
        else:
            # RecBole orders by a float timestamp; a date string would need a format we do not
            # know, so the column is left out rather than guessed.
            logger.warning("%s: timestamps are not all numbers; %s has no timestamp column",
                           table.file, file)
    yield "\t".join(header for header, _ in columns) + "\n"
    for cells in zip(*(values for _, values in columns), strict=True):
        yield "\t".join(cells) + "\n"


def _float_or_none(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _number(value: float) -> str:
    """`5` for 5.0 (RecBole's own files write whole ratings and timestamps so), else repr."""
    return str(int(value)) if value.is_integer() else repr(value)


__all__ = ["KG_HEADER", "LINK_HEADER", "write_recbole"]
