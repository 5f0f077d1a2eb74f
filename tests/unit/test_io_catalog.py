"""Catalog reader: formats, mapping loaders, and row-level validation errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgenrich.errors import InputError
from kgenrich.kg.io.catalog import (
    MAX_FIELD_CHARS,
    CatalogMapping,
    load_mapping,
    mapping_from_args,
    read_catalog,
)

DATA = Path(__file__).resolve().parents[1] / "data"
MAPPING = CatalogMapping(
    id="id",
    title="title",
    text=("description",),
    attributes={
        "director": "directed_by",
        "genres": "has_genre",
        "country": "country_of_origin",
        "year": "release_year",
    },
)
MINIMAL = CatalogMapping(id="id", title="title")


def test_csv_reads_ten_items_with_lists_and_multiline_text() -> None:
    items = read_catalog(DATA / "catalog.csv", mapping=MAPPING)
    assert [i.id for i in items] == [f"m{n}" for n in range(1, 11)]
    toy = items[0]
    assert toy.title == "Toy Story"
    assert toy.text["description"].endswith("Directed by John Lasseter.")
    assert toy.attributes["has_genre"] == ("Animation", "Comedy")
    assert items[1].attributes["country_of_origin"] == ("UK", "USA")
    assert items[7].attributes["directed_by"] == ("Joel Coen", "Ethan Coen")
    assert items[9].attributes["has_genre"] == ("Crime", "Mystery")  # parts are stripped
    assert "description" not in items[2].text and "directed_by" not in items[2].attributes
    assert items[5].title == "千と千尋の神隠し"


def test_jsonl_and_parquet_equal_csv(tmp_path: Path) -> None:
    from_csv = read_catalog(DATA / "catalog.csv", mapping=MAPPING)
    assert read_catalog(DATA / "catalog.jsonl", mapping=MAPPING) == from_csv
    frame = pd.read_json(DATA / "catalog.jsonl", lines=True)
    frame.to_parquet(tmp_path / "catalog.parquet")
    assert read_catalog(tmp_path / "catalog.parquet", mapping=MAPPING) == from_csv


def test_tsv_is_unquoted(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_text('id\ttitle\n1\tThe "Quoted" Film\n', encoding="utf-8")
    (item,) = read_catalog(path, mapping=MINIMAL)
    assert item.title == 'The "Quoted" Film'


def test_recbole_item_strips_types_and_splits_token_seq() -> None:
    mapping = CatalogMapping(id="item_id", title="movie_title", attributes={"class": "has_genre"})
    items = read_catalog(DATA / "recbole" / "mini.item", mapping=mapping)
    assert items[0].title == "Toy Story"  # token_seq title is not split
    assert items[0].attributes["has_genre"] == ("Animation", "Children's", "Comedy")


def test_mapping_loaders_agree() -> None:
    from_file = load_mapping(DATA / "mapping.toml")
    from_args = mapping_from_args(
        id="id",
        title="title",
        text=["description"],
        attributes=[
            "director=directed_by",
            "genres=has_genre",
            "country=country_of_origin",
            "year=release_year",
        ],
    )
    assert from_file == from_args == MAPPING


def test_mapping_from_args_rejects_bad_spec() -> None:
    with pytest.raises(InputError, match="column=relation"):
        mapping_from_args(id="id", title="title", attributes=["director"])


@pytest.mark.parametrize(
    ("name", "line", "field", "text"),
    [
        ("dup_id.csv", 4, "id", "duplicate id"),
        ("bad_utf8.csv", 3, "title", "undecodable"),
        ("nul.csv", 3, "title", "NUL"),
        ("missing_column.csv", 1, "title", "missing"),
        ("non_string.jsonl", 2, "title", "string"),
    ],
)
def test_malformed_catalogs_name_file_line_field(
    name: str, line: int, field: str, text: str
) -> None:
    path = DATA / "malformed" / name
    with pytest.raises(InputError, match=text) as info:
        read_catalog(path, mapping=MINIMAL)
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), line, field)
    assert f"{path}:{line}" in str(err) and repr(field) in str(err)


def test_csv_line_is_the_physical_line_of_the_row(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,title,plot\n1,A,"two\nlines"\n2,,x\n', encoding="utf-8")
    with pytest.raises(InputError, match="empty title") as info:
        read_catalog(path, mapping=MINIMAL)
    assert info.value.line == 4


def test_parquet_errors_say_row(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["a", "b"], "title": ["A", " "]}).to_parquet(tmp_path / "c.parquet")
    with pytest.raises(InputError, match="row 2: empty title") as info:
        read_catalog(tmp_path / "c.parquet", mapping=MINIMAL)
    assert (info.value.line, info.value.field) == (2, "title")


def test_overlong_field_and_control_chars_in_id(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(f"id,title\n1,{'x' * (MAX_FIELD_CHARS + 1)}\n", encoding="utf-8")
    with pytest.raises(InputError, match="too long"):
        read_catalog(path, mapping=MINIMAL)
    path.write_text('id,title\n"a\tb",T\n', encoding="utf-8")
    with pytest.raises(InputError, match="control character"):
        read_catalog(path, mapping=MINIMAL)


def test_jsonl_rejects_duplicate_keys_floats_and_non_objects(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    for body, match in [
        ('{"id": "1", "title": "A", "title": "B"}', "duplicate key"),
        ('{"id": 1.5, "title": "A"}', "string or an integer"),
        ('["id", "title"]', "not a JSON object"),
        ('{"id": "1", "title": "A"', "invalid JSON"),
    ]:
        path.write_text(body + "\n", encoding="utf-8")
        with pytest.raises(InputError, match=match) as info:
            read_catalog(path, mapping=MINIMAL)
        assert info.value.line == 1


def test_unknown_suffix_needs_explicit_format(tmp_path: Path) -> None:
    path = tmp_path / "catalog.data"
    path.write_text("id,title\n1,A\n", encoding="utf-8")
    with pytest.raises(InputError, match="format"):
        read_catalog(path, mapping=MINIMAL)
    fmt = MINIMAL.model_copy(update={"format": "csv"})
    assert read_catalog(path, mapping=fmt)[0].title == "A"


_cell = st.text(
    alphabet=st.characters(codec=None, exclude_categories=["Cs"]), max_size=30
) | st.sampled_from(["", "\x00", "a\x00b", '"', "\n", "\r\n", "m1", "x" * 50])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(_cell, _cell), max_size=6),
    junk=st.binary(max_size=8),
    where=st.integers(min_value=0, max_value=200),
)
def test_csv_parsing_never_raises_anything_but_input_error(
    tmp_path: Path, rows: list[tuple[str, str]], junk: bytes, where: int
) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "title"])
    writer.writerows(rows)
    raw = buffer.getvalue().encode("utf-8")
    raw = raw[:where] + junk + raw[where:]  # bad bytes, stray quotes, NULs anywhere
    path = tmp_path / "fuzz.csv"
    path.write_bytes(raw)
    try:
        items = read_catalog(path, mapping=MINIMAL.model_copy(update={"format": "csv"}))
    except InputError as err:
        assert err.file == str(path)
        return
    ids = [i.id for i in items]
    assert len(ids) == len(set(ids)) and all(i.strip() and "\x00" not in i for i in ids)
    assert all(i.title.strip() for i in items)


def test_small_field_limit_is_respected(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "1", "title": "abcdef"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="too long"):
        read_catalog(path, mapping=MINIMAL, max_field_chars=5)
