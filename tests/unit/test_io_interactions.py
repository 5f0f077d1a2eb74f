"""The one interactions reader (RecBole .inter, CSV, TSV): columns found by name, and errors that
name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgenrich.errors import InputError
from kgenrich.kg.io.interactions import read_interaction_table, read_interactions
from kgenrich.kg.ratings import Interaction


def test_recbole_inter_with_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "x.inter"
    path.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                    "196\t242\t3\t881250949\n\n186\t302\t3.5\t891717742\n", encoding="utf-8")
    table = read_interaction_table(path)
    assert table.users == ("196", "186") and table.items == ("242", "302")
    assert table.ratings == (3.0, 3.5) and table.lines == (2, 4)
    assert read_interactions(path) == [Interaction(user="196", item="242", rating=3.0),
                                       Interaction(user="186", item="302", rating=3.5)]


def test_csv_aliases_and_implicit_feedback(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId\n1,10\n2,20\n", encoding="utf-8")
    table = read_interaction_table(path)
    assert table.ratings is None
    assert read_interactions(path) == [Interaction(user="1", item="10"),
                                       Interaction(user="2", item="20")]


def test_tsv_header_types_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "ratings.tsv"
    path.write_text("user:token\titem:token\trating:float\nu\ti\t4\n", encoding="utf-8")
    assert read_interactions(path) == [Interaction(user="u", item="i", rating=4.0)]


@pytest.mark.parametrize(
    ("name", "text", "line", "field", "message"),
    [
        ("x.csv", "", 1, "header", "empty file"),
        ("x.csv", "user_id,rating\nu,5\n", 1, "item_id", "column missing"),
        ("x.inter", "user_id:token\titem_id:token\trating:float\nu\ti\tfive\n", 2, "rating",
         "not a number"),
        ("x.csv", "user_id,item_id,rating\nu,i,5\nu,j,inf\n", 3, "rating", "not a finite number"),
        ("x.csv", "user_id,item_id,rating\nu,i\n", 2, "row", "wrong number of columns"),
        ("x.csv", "user_id,item_id\n ,i\n", 2, "user_id", "empty value"),
        ("x.inter", "user_id\titem_id:token\n", 1, "user_id", "bad RecBole header column"),
    ],
)
def test_errors_name_file_line_field(
    tmp_path: Path, name: str, text: str, line: int, field: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as info:
        read_interactions(path)
    assert (info.value.file, info.value.line, info.value.field) == (str(path), line, field)
