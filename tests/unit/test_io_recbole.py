"""The one RecBole atomic-file reader: header fields, rows with line numbers, and errors that
name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgenrich.errors import InputError
from kgenrich.kg.io.recbole import ATOMIC_TYPES, AtomicField, read_atomic

DATA = Path(__file__).resolve().parents[1] / "data"


def test_reads_header_fields_and_rows_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "x.inter"
    path.write_text("user_id:token\titem_id:token\trating:float\r\nu1\tm1\t5\r\n\r\nu2\t m2 \t3\n",
                    encoding="utf-8")
    atomic = read_atomic(path, required=("user_id",))
    assert atomic.fields == (AtomicField("user_id", "token"), AtomicField("item_id", "token"),
                             AtomicField("rating", "float"))
    assert [(r.line, r.cells) for r in atomic.rows()] == [(2, ("u1", "m1", "5")),
                                                         (4, ("u2", "m2", "3"))]
    assert atomic.columns(("item_id",)) == {"item_id": [(2, "m1"), (4, "m2")]}


def test_catalog_item_file_header_types(tmp_path: Path) -> None:
    atomic = read_atomic(DATA / "recbole" / "mini.item", types=ATOMIC_TYPES)
    assert all(f.type in ATOMIC_TYPES for f in atomic.fields)


@pytest.mark.parametrize(
    ("text", "kwargs", "line", "field", "message"),
    [
        ("", {}, 1, "header", "empty file"),
        ("user_id\titem_id:token\n", {}, 1, "user_id", "bad RecBole header column"),
        ("a:token\t\n", {}, 1, "(empty column)", "bad RecBole header column"),
        ("a:tok\n", {"types": ATOMIC_TYPES}, 1, "a:tok", "name:token_seq"),
        ("user_id:token\trating:float\n", {"required": ("item_id",)}, 1, "item_id",
         "column missing"),
        ("head:token\trelation:token\ttail:token\n",
         {"header": ("head_id:token", "relation_id:token", "tail_id:token")}, 1, "header",
         "bad RecBole .inter header"),
    ],
)
def test_header_errors_name_file_line_field(
    tmp_path: Path, text: str, kwargs: dict[str, object], line: int, field: str, message: str
) -> None:
    path = tmp_path / "x.inter"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as info:
        read_atomic(path, **kwargs)  # type: ignore[arg-type]
    assert (info.value.file, info.value.line, info.value.field) == (str(path), line, field)


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        (b"u1\tm1\n\nu2\n", 4, "row", "wrong number of columns"),
        (b"u1\tm1\nu2\t \n", 3, "item_id", "empty value"),
        (b"u1\t\xff\n", 2, "item_id", "undecodable bytes"),
        (b"u1\tm\x001\n", 2, "item_id", "NUL"),
    ],
)
def test_row_errors_name_file_line_field(
    tmp_path: Path, body: bytes, line: int, field: str, message: str
) -> None:
    path = tmp_path / "x.link"
    path.write_bytes(b"user_id:token\titem_id:token\n" + body)
    atomic = read_atomic(path)
    with pytest.raises(InputError, match=message) as info:
        list(atomic.rows(required=("user_id", "item_id")))
    assert (info.value.file, info.value.line, info.value.field) == (str(path), line, field)
    assert f"{path}:{line}" in str(info.value) and repr(field) in str(info.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found") as info:
        read_atomic(tmp_path / "nope.kg")
    assert info.value.file == str(tmp_path / "nope.kg")
