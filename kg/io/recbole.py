"""Read RecBole atomic files (`.inter`, `.item`, `.kg`, `.link`): a `name:type` header line, then
one tab-separated row per physical line. Every error names the file, the 1-based line and the field.

This module knows the format only; what a column means is the caller's business (`seed.py` reads
`.kg`/`.link`, `catalog.py` `.item`, `interactions.py` `.inter`, `recsys.data` all four).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kgenrich.errors import InputError
from kgenrich.kg.io._text import check_field, read_text, split_lines

# The column types RecBole itself defines; a catalog `.item` may use no other.
ATOMIC_TYPES: tuple[str, ...] = ("token", "token_seq", "float", "float_seq")


@dataclass(frozen=True, slots=True)
class AtomicField:
    """One header column: `name:type`."""

    name: str
    type: str

    @property
    def is_seq(self) -> bool:
        return self.type.endswith("_seq")


@dataclass(frozen=True, slots=True)
class AtomicRow:
    """One data row: its 1-based line number and its cells, stripped."""

    line: int
    cells: tuple[str, ...]


def parse_header(
    columns: Sequence[str], *, file: str, types: Collection[str] | None = None
) -> tuple[AtomicField, ...]:
    """Split header cells into fields, each `name:type` (with `type` in `types` when given)."""
    fields: list[AtomicField] = []
    for column in columns:
        name, sep, ftype = column.partition(":")
        if not sep or not name or not ftype or (types is not None and ftype not in types):
            expected = "name:type" if types is None else _alternatives(types)
            raise InputError(
                "bad RecBole header column",
                file=file,
                line=1,
                field=column or "(empty column)",
                expected=expected,
                got=column,
            )
        fields.append(AtomicField(name, ftype))
    return tuple(fields)


def _alternatives(types: Collection[str]) -> str:
    shown = [f"name:{t}" for t in types]
    return ", ".join(shown[:-1]) + " or " + shown[-1] if len(shown) > 1 else "".join(shown)


@dataclass(frozen=True)
class AtomicFile:
    """A parsed atomic file: header fields and the raw non-blank data lines.

    Rows are split lazily by `rows()` / `row()`, so a caller may skip a bad row and go on.
    """

    file: str
    fields: tuple[AtomicField, ...]
    lines: tuple[tuple[int, str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def index(self, name: str) -> int:
        """Column position of `name`; `InputError` on line 1 when the header lacks it."""
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(
                "column missing from header",
                file=self.file,
                line=1,
                field=name,
                expected=f"a header column named {name!r}",
                got="\t".join(f"{f.name}:{f.type}" for f in self.fields),
            ) from None

    def row(self, line: int, text: str, *, required: Collection[str] = ()) -> AtomicRow:
        """Split one data line; it must have one cell per header column, and the cells of
        `required` columns must be non-empty UTF-8 text."""
        parts = text.split("\t")
        if len(parts) != len(self.fields):
            raise InputError(
                "wrong number of columns",
                file=self.file,
                line=line,
                field="row",
                expected=f"{len(self.fields)} tab-separated columns ({', '.join(self.names)})",
                got=f"{len(parts)} columns",
            )
        cells = tuple(p.strip() for p in parts)
        for name, value in zip(self.names, cells, strict=True):
            if name not in required:
                continue
            check_field(value, file=self.file, line=line, field=name)
            if not value:
                raise InputError("empty value", file=self.file, line=line, field=name)
        return AtomicRow(line, cells)

    def rows(self, *, required: Collection[str] = ()) -> Iterator[AtomicRow]:
        """Every data row (see `row`); the first bad one raises."""
        for line, text in self.lines:
            yield self.row(line, text, required=required)

    def columns(self, names: Sequence[str]) -> dict[str, list[tuple[int, str]]]:
        """`{name: [(line, value), ...]}` for `names`, which must be header columns holding
        non-empty values on every row."""
        index = {name: self.index(name) for name in names}
        out: dict[str, list[tuple[int, str]]] = {name: [] for name in names}
        for row in self.rows(required=names):
            for name, col in index.items():
                out[name].append((row.line, row.cells[col]))
        return out


def read_atomic(
    path: str | Path,
    *,
    header: Sequence[str] | None = None,
    required: Sequence[str] = (),
    types: Collection[str] | None = None,
) -> AtomicFile:
    """Read an atomic file's header and lines (blank lines skipped, line numbers kept).

    `header`, when given, is the exact header the file must have (e.g. a `.kg`'s three
    columns); `required` names columns the header must contain; `types` restricts field types.
    """
    file = str(path)
    lines = split_lines(read_text(Path(path)))
    if not lines:
        raise InputError("empty file: no header line", file=file, line=1, field="header")
    columns = lines[0].split("\t")
    if header is not None and [c.strip() for c in columns] != list(header):
        raise InputError(
            f"bad RecBole {Path(path).suffix or 'atomic'} header",
            file=file,
            line=1,
            field="header",
            expected="\t".join(header),
            got=lines[0],
        )
    fields = parse_header(columns, file=file, types=types)
    body = tuple((n, text) for n, text in enumerate(lines[1:], start=2) if text.strip())
    atomic = AtomicFile(file=file, fields=fields, lines=body)
    for name in required:
        atomic.index(name)
    return atomic


__all__ = ["ATOMIC_TYPES", "AtomicField", "AtomicFile", "AtomicRow", "parse_header", "read_atomic"]
