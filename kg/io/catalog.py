"""Read an item catalog (CSV, TSV, JSONL, Parquet or a RecBole `.item` file) into `Item` records.

Contract: every row is validated; the first bad row raises `InputError` naming the file, the
1-based line (CSV/TSV/RecBole: the physical line the row starts on; JSONL: the line; Parquet:
the row number, said as "row") and the field. Nothing partial is ever returned.

Rules: files are UTF-8 (a BOM is allowed); no NUL bytes; fields at most `MAX_FIELD_CHARS`
characters; ids and titles non-empty after stripping; ids unique and free of control characters
(they end up in tab-separated exports). In JSONL and Parquet a value must be a string or an
integer (integers are written in decimal), attribute values may also be lists of those; a
missing or null text/attribute value is empty. Attribute cells are split on the mapping's list
separator (RecBole `token_seq` columns on spaces), stripped, and empty parts dropped.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kgenrich import progress
from kgenrich.errors import InputError
from kgenrich.kg.io._text import BAD_BYTE, MAX_FIELD_CHARS, check_field, read_text, split_lines
from kgenrich.kg.io.recbole import ATOMIC_TYPES, parse_header
from kgenrich.kg.records import Item

logger = logging.getLogger(__name__)

CatalogFormat = Literal["auto", "csv", "tsv", "jsonl", "parquet", "recbole"]

_SUFFIX_FORMATS: Mapping[str, CatalogFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".item": "recbole",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class CatalogMapping(BaseModel):
    """Which catalog columns hold the id, the title, free text and relation-valued attributes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # "id" and "title" are the demo catalog's and the CLI's default column names.
    id: str = "id"
    title: str = "title"
    text: tuple[str, ...] = ()
    # column -> ontology relation; several columns may feed the same relation.
    attributes: Mapping[str, str] = Field(default_factory=dict)
    list_separator: str = "|"
    # Per-column separator overriding list_separator (and the space of RecBole token_seq).
    separators: Mapping[str, str] = Field(default_factory=dict)
    format: CatalogFormat = "auto"

    @model_validator(mode="after")
    def _check(self) -> CatalogMapping:
        for name in (self.id, self.title, *self.text, *self.attributes, *self.attributes.values()):
            if not name.strip():
                raise ValueError("column and relation names must be non-empty")
        if not self.list_separator:
            raise ValueError("list_separator must be non-empty")
        for column, sep in self.separators.items():
            if column not in self.attributes:
                raise ValueError(f"separator given for {column!r}, which is not an attribute")
            if not sep:
                raise ValueError(f"separator for {column!r} must be non-empty")
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the mapping reads, in order, without repeats."""
        return tuple(dict.fromkeys((self.id, self.title, *self.text, *self.attributes)))


def load_mapping(path: str | Path) -> CatalogMapping:
    """Read a `CatalogMapping` from a `.json` or `.toml` file (keys as the model's fields)."""
    file = Path(path)
    text = read_text(file)
    try:
        if file.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        elif file.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise InputError("unknown mapping format", file=str(file), expected=".json or .toml")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise InputError(f"cannot parse mapping: {err}", file=str(file)) from err
    try:
        return CatalogMapping.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise InputError(
            first["msg"], file=str(file), field=".".join(str(p) for p in first["loc"]) or None
        ) from err


def mapping_from_args(
    *,
    id: str,
    title: str,
    text: Sequence[str] = (),
    attributes: Sequence[str] = (),
    list_separator: str = "|",
    format: CatalogFormat = "auto",
) -> CatalogMapping:
    """Build a mapping from CLI strings; each attribute is `column=relation`, e.g.
    `director=directed_by`."""
    parsed: dict[str, str] = {}
    for spec in attributes:
        column, sep, relation = spec.partition("=")
        if not sep or not column.strip() or not relation.strip():
            raise InputError(
                "bad attribute mapping", field="attributes", expected="column=relation", got=spec
            )
        parsed[column.strip()] = relation.strip()
    try:
        return CatalogMapping(
            id=id,
            title=title,
            text=tuple(text),
            attributes=parsed,
            list_separator=list_separator,
            format=format,
        )
    except ValidationError as err:
        raise InputError(err.errors()[0]["msg"], field="mapping") from err


def read_catalog(
    path: str | Path, *, mapping: CatalogMapping, max_field_chars: int = MAX_FIELD_CHARS
) -> list[Item]:
    """Read and validate every row of a catalog file; see the module docstring for the rules."""
    file = Path(path)
    fmt = mapping.format if mapping.format != "auto" else _detect(file)
    if fmt == "parquet":
        rows, unit = _parquet_rows(file, mapping=mapping), "row"
        seq_columns: frozenset[str] = frozenset()
    elif fmt == "jsonl":
        rows, unit, seq_columns = _jsonl_rows(file, mapping=mapping), "line", frozenset()
    else:
        rows, seq_columns = _delimited(file, fmt=fmt, mapping=mapping, max_chars=max_field_chars)
        unit = "line"
    items = _build_items(
        rows,
        mapping=mapping,
        file=str(file),
        unit=unit,
        seq_columns=seq_columns,
        max_chars=max_field_chars,
        all_cells=fmt not in ("jsonl", "parquet"),
    )
    logger.info("read %d items from %s (%s)", len(items), file, fmt)
    return items


def _detect(file: Path) -> CatalogFormat:
    fmt = _SUFFIX_FORMATS.get(file.suffix.lower())
    if fmt is None:
        raise InputError(
            "cannot tell the catalog format from the file name",
            file=str(file),
            expected=", ".join(sorted(_SUFFIX_FORMATS)) + " or an explicit format",
            got=file.suffix or "(no suffix)",
        )
    return fmt


Row = tuple[int, Mapping[str, object]]


def _raise_field_limit() -> None:
    # csv's own limit (131072 by default) would fail before our check and without naming the
    # column. The whole file is already in memory, so a larger limit costs nothing; raising the
    # process-wide limit only ever loosens it for other callers.
    want = min(sys.maxsize, 2**31 - 1)
    if csv.field_size_limit() < want:
        csv.field_size_limit(want)


def _delimited(
    file: Path, *, fmt: CatalogFormat, mapping: CatalogMapping, max_chars: int
) -> tuple[Iterator[Row], frozenset[str]]:
    """Rows of a CSV, TSV or RecBole file and its `_seq` columns; checks the header eagerly."""
    text = read_text(file)
    name = str(file)
    _raise_field_limit()
    if fmt == "csv":
        reader = csv.reader(_lines_keepends(text), strict=True)
    else:
        # TSV and RecBole files are not quoted: a quote character is just text (RecBole reads
        # them the same way), and every physical line is one row.
        reader = csv.reader(_lines_keepends(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    try:
        header = next(reader, None)
    except csv.Error as err:
        raise InputError(f"malformed header: {err}", file=name, line=1, field="header") from err
    if not header:
        raise InputError("empty file: no header line", file=name, line=1, field="header")
    seq_columns: set[str] = set()
    if fmt == "recbole":
        header, seq_columns = _recbole_header(header, file=name)
    for column in header:
        check_field(column, file=name, line=1, field="header", max_chars=max_chars)
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise InputError("duplicate column in header", file=name, line=1, field=column)
        seen.add(column)
    for column in mapping.columns:
        if column not in seen:
            raise InputError(
                "column missing from header",
                file=name,
                line=1,
                field=column,
                expected="one of: " + ", ".join(header),
            )
    return _delimited_rows(reader, header=header, file=name), frozenset(seq_columns)


def _lines_keepends(text: str) -> Iterator[str]:
    # Split on LF only: csv counts line_num per line it is given, and str.splitlines would also
    # break on U+2028 etc. and shift the reported line numbers.
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start : end + 1]
        start = end + 1


def _recbole_header(header: list[str], *, file: str) -> tuple[list[str], set[str]]:
    fields = parse_header(header, file=file, types=ATOMIC_TYPES)
    return [f.name for f in fields], {f.name for f in fields if f.is_seq}


def _delimited_rows(reader: Any, *, header: list[str], file: str) -> Iterator[Row]:
    width = len(header)
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader, None)
        except csv.Error as err:
            raise InputError(f"malformed row: {err}", file=file, line=start, field="row") from err
        if record is None:
            return
        if not record:  # a blank line
            continue
        if len(record) != width:
            field = header[len(record)] if len(record) < width else "(extra column)"
            raise InputError(
                "wrong number of columns",
                file=file,
                line=start,
                field=field,
                expected=str(width),
                got=str(len(record)),
            )
        yield start, dict(zip(header, record, strict=True))


def _jsonl_rows(file: Path, *, mapping: CatalogMapping) -> Iterator[Row]:
    name = str(file)
    seen_columns: set[str] = set()
    first_line = 1
    for line_no, line in enumerate(split_lines(read_text(file)), start=1):
        if not line.strip():
            continue
        first_line = min(first_line, line_no)
        try:
            obj = json.loads(line, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as err:
            raise InputError(
                f"invalid JSON: {err.msg}", file=name, line=line_no, field="row"
            ) from err
        except _DuplicateKey as err:
            raise InputError("duplicate key", file=name, line=line_no, field=str(err)) from err
        if not isinstance(obj, dict):
            raise InputError(
                "not a JSON object", file=name, line=line_no, field="row", got=type(obj).__name__
            )
        if BAD_BYTE.search(line):
            # Cells in use are checked again later; this catches keys and unused values too.
            raise InputError(
                "undecodable bytes",
                file=name,
                line=line_no,
                field=_first_bad_key(obj),
                expected="UTF-8 text",
            )
        seen_columns.update(obj)
        yield line_no, obj
    for column in mapping.columns:
        if column not in seen_columns:
            raise InputError("column absent from every row", file=name, line=1, field=column)


def _first_bad_key(obj: Mapping[str, Any]) -> str:
    for key, value in obj.items():
        if BAD_BYTE.search(key) or BAD_BYTE.search(json.dumps(value, ensure_ascii=False)):
            return key
    return "row"


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _parquet_rows(file: Path, *, mapping: CatalogMapping) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = str(file)
    try:
        schema = pq.read_schema(file)
    except FileNotFoundError as err:
        raise InputError("file not found", file=name) from err
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"not a readable Parquet file: {err}", file=name) from err
    for column in mapping.columns:
        if column not in schema.names:
            raise InputError(
                "column missing from Parquet schema",
                file=name,
                line=1,
                field=column,
                expected="one of: " + ", ".join(schema.names),
            )
    try:
        table = pq.read_table(file, columns=list(mapping.columns))
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"cannot read Parquet data: {err}", file=name) from err
    columns = {c: table.column(c).to_pylist() for c in mapping.columns}
    for i in range(table.num_rows):
        yield i + 1, {c: values[i] for c, values in columns.items()}


def _build_items(
    rows: Iterator[Row],
    *,
    mapping: CatalogMapping,
    file: str,
    unit: str,
    seq_columns: frozenset[str],
    max_chars: int,
    all_cells: bool,
) -> list[Item]:
    items: list[Item] = []
    first_seen: dict[str, int] = {}
    for line, row in progress.counted(rows, f"reading {Path(file).name}", unit=unit + "s"):
        ctx = _RowContext(file=file, line=line, unit=unit, max_chars=max_chars)
        if all_cells:
            # Delimited rows: check every cell, used or not; a corrupt cell means a corrupt file.
            for column, value in row.items():
                ctx.text(column, value)
        item = _item_from_row(row, mapping=mapping, ctx=ctx, seq_columns=seq_columns)
        if item.id in first_seen:
            ctx.fail(
                f"duplicate id (first on {unit} {first_seen[item.id]})", mapping.id, got=item.id
            )
        first_seen[item.id] = line
        items.append(item)
    return items


class _RowContext:
    """Where a row came from, to raise errors that name it."""

    __slots__ = ("file", "line", "unit", "max_chars")

    def __init__(self, *, file: str, line: int, unit: str, max_chars: int) -> None:
        self.file, self.line, self.unit, self.max_chars = file, line, unit, max_chars

    def fail(self, message: str, field: str, *, got: str | None = None) -> NoReturn:
        prefix = f"row {self.line}: " if self.unit == "row" else ""
        raise InputError(prefix + message, file=self.file, line=self.line, field=field, got=got)

    def text(self, column: str, value: object) -> str | None:
        """A cell as text: None stays None, integers become decimal strings, others fail."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.fail("expected a string or an integer", column, got=type(value).__name__)
        text = value if isinstance(value, str) else str(value)
        check_field(text, file=self.file, line=self.line, field=column, max_chars=self.max_chars)
        return text


def _item_from_row(
    row: Mapping[str, object],
    *,
    mapping: CatalogMapping,
    ctx: _RowContext,
    seq_columns: frozenset[str],
) -> Item:
    if mapping.id not in row:
        ctx.fail("missing id", mapping.id)
    item_id = (ctx.text(mapping.id, row[mapping.id]) or "").strip()
    if not item_id:
        ctx.fail("empty id", mapping.id)
    if _CONTROL.search(item_id):
        ctx.fail("control character in id", mapping.id, got=item_id)
    if mapping.title not in row:
        ctx.fail("missing title", mapping.title)
    title = (ctx.text(mapping.title, row[mapping.title]) or "").strip()
    if not title:
        ctx.fail("empty title", mapping.title)
    texts: dict[str, str] = {}
    for column in mapping.text:
        value = (ctx.text(column, row.get(column)) or "").strip()
        if value:
            texts[column] = value
    attributes: dict[str, list[str]] = {}
    for column, relation in mapping.attributes.items():
        sep = mapping.separators.get(column) or (
            " " if column in seq_columns else mapping.list_separator
        )
        raw = row.get(column)
        parts: list[str] = []
        if isinstance(raw, list | tuple):  # JSON arrays, Parquet list columns: already split
            for element in raw:
                parts.extend(_split(ctx.text(column, element), sep=None))
        else:
            parts = _split(ctx.text(column, raw), sep=sep)
        bucket = attributes.setdefault(relation, [])
        bucket.extend(p for p in parts if p not in bucket)
    return Item(
        id=item_id,
        title=title,
        text=texts,
        attributes={r: tuple(v) for r, v in attributes.items() if v},
    )


def _split(value: str | None, *, sep: str | None) -> list[str]:
    if value is None:
        return []
    parts = value.split(sep) if sep is not None else [value]
    return [p.strip() for p in parts if p.strip()]
