"""Write RecBole atomic KG files: `<dataset>.kg` (head_id relation_id tail_id) and `<dataset>.link`
(item_id entity_id), tab-separated with `name:token` headers.

Tokens are kgenrich entity ids and relation names, so `read_seed(..., format="recbole")` reads
them back to the same triples. The two files go next to the dataset's `.inter`/`.item` files, so
they are written with per-file atomic replaces (both complete before either is replaced), not
by replacing the directory.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from pathlib import Path

from kgenrich.kg.atomic import atomic_write
from kgenrich.kg.export._common import check_token, entity_index, item_id_of, natural_key
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
) -> dict[str, int]:
    """Write `<path>/<dataset>.kg` and `.link` (dataset defaults to the directory's name).

    Duplicate (head, relation, tail) keys are written once; every item entity (`item/<id>`)
    among the entities or in a triple gets a link row. Returns triple and link counts.
    """
    folder = Path(path)
    name = dataset or folder.name
    folder.mkdir(parents=True, exist_ok=True)
    kg_file, link_file = folder / f"{name}.kg", folder / f"{name}.link"
    rows: dict[tuple[str, str, str], None] = {}
    for t in triples:
        for value, what in ((t.head, "head"), (t.relation, "relation"), (t.tail, "tail")):
            check_token(value, what=what, file=str(kg_file))
        rows.setdefault(t.key)
    ids = [*entity_index(entities), *(e for h, _, t in rows for e in (h, t))]
    items = sorted({i for i in ids if item_id_of(i) is not None}, key=natural_key)
    with contextlib.ExitStack() as stack:
        kg = stack.enter_context(atomic_write(kg_file))
        link = stack.enter_context(atomic_write(link_file))
        kg.write(KG_HEADER)
        kg.writelines(f"{h}\t{r}\t{t}\n" for h, r, t in rows)
        link.write(LINK_HEADER)
        for entity_id in items:
            item = check_token(item_id_of(entity_id) or "", what="item id", file=str(link_file))
            link.write(f"{item}\t{entity_id}\n")
    logger.info(
        "wrote %s (%d triples) and %s (%d links)", kg_file, len(rows), link_file, len(items)
    )
    return {"triples": len(rows), "links": len(items)}
