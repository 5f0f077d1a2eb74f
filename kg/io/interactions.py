"""Read user-item interactions (user, item, optional rating; other columns ignored) from a RecBole
`.inter` atomic file or a CSV/TSV with a header line. Errors name the file, the line and the field.

Columns are found by name, case-insensitively: `user_id`/`userId`/`user`, `item_id`/`movieId`/
`item`, `rating`, `timestamp` (kept as text, for exporters that pass it on). A `.inter` header
must be RecBole's `name:type`; a CSV/TSV header is plain names (a `:type` suffix is ignored),
tab-separated when the header holds a tab, else comma-separated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kgenrich.errors import InputError
from kgenrich.kg.io._text import check_field, read_text, split_lines
from kgenrich.kg.io.recbole import read_atomic
from kgenrich.kg.ratings import Interaction

USER_COLUMNS: tuple[str, ...] = ("user_id", "userid", "user")
ITEM_COLUMNS: tuple[str, ...] = ("item_id", "movieid", "item")
RATING_COLUMNS: tuple[str, ...] = ("rating",)
TIMESTAMP_COLUMNS: tuple[str, ...] = ("timestamp",)


@dataclass(frozen=True, eq=False)
class InteractionTable:
    """Interactions as columns, in file order, with the line each came from.

    `ratings` is None when the file has no rating column (implicit feedback); `timestamps` (the
    cells' text, unchecked) is None when it has no timestamp column.
    """

    file: str
    users: tuple[str, ...]
    items: tuple[str, ...]
    ratings: tuple[float, ...] | None
    lines: tuple[int, ...]
    timestamps: tuple[str, ...] | None = None

    def records(self) -> list[Interaction]:
        """The same interactions as `Interaction` records."""
        ratings: Sequence[float | None] = self.ratings or [None] * len(self.users)
        return [
            Interaction(user=u, item=i, rating=r)
            for u, i, r in zip(self.users, self.items, ratings, strict=True)
        ]


def read_interaction_table(path: str | Path) -> InteractionTable:
    """Read an interactions file (see the module docstring) into columns."""
    file = Path(path)
    name = str(file)
    header, body = _header_and_rows(file)
    lowered = [h.lower() for h in header]
    u = _required(lowered, USER_COLUMNS, file=name)
    i = _required(lowered, ITEM_COLUMNS, file=name)
    r = _find(lowered, RATING_COLUMNS)
    ts = _find(lowered, TIMESTAMP_COLUMNS)
    users: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    timestamps: list[str] = []
    lines: list[int] = []
    for line, cells in body:
        if len(cells) != len(header):
            raise InputError(
                "wrong number of columns",
                file=name,
                line=line,
                field="row",
                expected=f"{len(header)} columns ({', '.join(header)})",
                got=f"{len(cells)} columns",
            )
        for col in (u, i):
            value, field = cells[col], header[col]
            check_field(value, file=name, line=line, field=field)
            if not value:
                raise InputError("empty value", file=name, line=line, field=field)
        users.append(cells[u])
        items.append(cells[i])
        if r is not None:
            ratings.append(_rating(cells[r], file=name, line=line, field=header[r]))
        if ts is not None:
            timestamps.append(cells[ts])
        lines.append(line)
    return InteractionTable(
        file=name,
        users=tuple(users),
        items=tuple(items),
        ratings=tuple(ratings) if r is not None else None,
        lines=tuple(lines),
        timestamps=tuple(timestamps) if ts is not None else None,
    )


def read_interactions(path: str | Path) -> list[Interaction]:
    """Read an interactions file (see the module docstring) as `Interaction` records."""
    return read_interaction_table(path).records()


def _header_and_rows(file: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header names and `(line, stripped cells)` of every non-blank row."""
    name = str(file)
    if file.suffix.lower() == ".inter":
        atomic = read_atomic(file)
        rows = [(line, [c.strip() for c in text.split("\t")]) for line, text in atomic.lines]
        return list(atomic.names), rows
    lines = split_lines(read_text(file))
    if not lines or not lines[0].strip():
        raise InputError("empty file: no header line", file=name, line=1, field="header")
    delim = "\t" if "\t" in lines[0] else ","
    header = [h.split(":")[0].strip() for h in lines[0].split(delim)]
    rows = [
        (n, [c.strip() for c in text.split(delim)])
        for n, text in enumerate(lines[1:], start=2)
        if text.strip()
    ]
    return header, rows


def _find(header: list[str], names: Sequence[str]) -> int | None:
    return next((header.index(n) for n in names if n in header), None)


def _required(header: list[str], names: Sequence[str], *, file: str) -> int:
    found = _find(header, names)
    if found is None:
        raise InputError(
            "column missing from header",
            file=file,
            line=1,
            field=names[0],
            expected=" or ".join(names),
            got="\t".join(header),
        )
    return found


def _rating(text: str, *, file: str, line: int, field: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise InputError("not a number", file=file, line=line, field=field, got=text) from err
    if not math.isfinite(value):
        raise InputError("not a finite number", file=file, line=line, field=field, got=text)
    return value


__all__ = [
    "ITEM_COLUMNS",
    "RATING_COLUMNS",
    "TIMESTAMP_COLUMNS",
    "USER_COLUMNS",
    "InteractionTable",
    "read_interaction_table",
    "read_interactions",
]
