"""Helpers shared by the exporters: item ids of entities, token checks, entity lookup."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kgenrich.errors import ExportError
from kgenrich.kg.records import Entity, Triple

ITEM_PREFIX = "item/"


def item_id_of(entity_id: str) -> str | None:
    """The catalog item id of an item entity (`item/<id>`), else None."""
    return entity_id[len(ITEM_PREFIX) :] if entity_id.startswith(ITEM_PREFIX) else None


def check_token(value: str, *, what: str, file: str) -> str:
    """A value for a tab-separated export: non-empty, no tab, CR or LF (they would split it)."""
    if not value or any(c in value for c in "\t\r\n"):
        raise ExportError(f"{file}: {what} {value!r} is empty or holds a tab or line break")
    return value


def entity_index(entities: Iterable[Entity]) -> dict[str, Entity]:
    """Entities by id; the first record of an id wins."""
    out: dict[str, Entity] = {}
    for entity in entities:
        out.setdefault(entity.id, entity)
    return out


def referenced_ids(triples: Iterable[Triple]) -> list[str]:
    """Every entity id a triple mentions, in first-seen order."""
    seen: dict[str, None] = {}
    for t in triples:
        seen.setdefault(t.head)
        seen.setdefault(t.tail)
    return list(seen)


def natural_key(value: str) -> tuple[int, int, str]:
    """Sort numeric ids numerically ("2" before "10"), then everything else by text."""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def missing(ids: Iterable[str], known: Mapping[str, Entity]) -> list[str]:
    return [i for i in ids if i not in known]
