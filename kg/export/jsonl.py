"""The canonical, lossless dump of a graph: `entities.jsonl` and `triples.jsonl`, one pydantic
record per line, and the reader that turns them back into the same records (so a finished run
can be re-exported in any other format).

Non-finite scores are written as `NaN` / `Infinity` (as Python's json does) so they survive.
Both files are written with per-file atomic replaces, complete before either is replaced; the
directory may hold other run outputs, which are left alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from kgenrich.errors import InputError
from kgenrich.kg.atomic import atomic_write
from kgenrich.kg.io._text import read_text, split_lines
from kgenrich.kg.records import Entity, Triple

logger = logging.getLogger(__name__)

ENTITIES_FILE = "entities.jsonl"
TRIPLES_FILE = "triples.jsonl"

R = TypeVar("R", Entity, Triple)


class GraphDump(BaseModel):
    """What a JSONL dump holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entities: tuple[Entity, ...]
    triples: tuple[Triple, ...]


def write_jsonl(
    path: str | Path, *, entities: Iterable[Entity], triples: Iterable[Triple]
) -> dict[str, int]:
    """Write `<path>/entities.jsonl` and `<path>/triples.jsonl`; returns the record counts."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    counts = {"entities": 0, "triples": 0}
    with contextlib.ExitStack() as stack:
        ent = stack.enter_context(atomic_write(folder / ENTITIES_FILE))
        tri = stack.enter_context(atomic_write(folder / TRIPLES_FILE))
        for entity in entities:
            ent.write(entity.model_dump_json() + "\n")
            counts["entities"] += 1
        for triple in triples:
            tri.write(_dump_triple(triple) + "\n")
            counts["triples"] += 1
    logger.info("wrote JSONL dump to %s: %s", folder, counts)
    return counts


def _dump_triple(triple: Triple) -> str:
    if all(math.isfinite(v) for v in triple.provenance.scores.values()):
        return triple.model_dump_json()
    # model_dump_json writes NaN and infinities as null, which would not read back as a float;
    # json.dumps writes NaN / Infinity, which Python's json and pydantic both read.
    return json.dumps(triple.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))


def read_jsonl(path: str | Path) -> GraphDump:
    """Read a dump written by `write_jsonl`; a bad line raises `InputError` (file, line, field)."""
    folder = Path(path)
    return GraphDump(
        entities=tuple(_read(folder / ENTITIES_FILE, Entity)),
        triples=tuple(_read(folder / TRIPLES_FILE, Triple)),
    )


def _read(file: Path, model: type[R]) -> list[R]:
    out: list[R] = []
    for line_no, line in enumerate(split_lines(read_text(file)), start=1):
        if not line.strip():
            continue
        try:
            out.append(model.model_validate_json(line))
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "row"
            raise InputError(first["msg"], file=str(file), line=line_no, field=field) from err
    return out
