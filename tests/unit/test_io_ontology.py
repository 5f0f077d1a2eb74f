"""Ontology loading and validation; the shipped ontologies load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kgenrich.data import ontology
from kgenrich.errors import InputError
from kgenrich.kg.ontology import load_ontology

GOOD = {
    "item_type": "Movie",
    "types": ["Movie", "Person"],
    "relations": [{"name": "directed_by", "domain": "Movie", "range": "Person"}],
}


def test_shipped_ontologies_load() -> None:
    movies = load_ontology(ontology("movies"))
    assert movies.item_type == "Movie"
    assert {
        "directed_by",
        "written_by",
        "starring",
        "has_genre",
        "country_of_origin",
        "original_language",
    } <= set(movies.relation_names)
    assert movies.relation("release_year").functional  # type: ignore[union-attr]
    books = load_ontology(ontology("books"))
    assert books.relation_names == ("written_by", "published_by", "has_genre")


def test_toml_equals_json(tmp_path: Path) -> None:
    (tmp_path / "o.json").write_text(json.dumps(GOOD))
    (tmp_path / "o.toml").write_text(
        'item_type = "Movie"\ntypes = ["Movie", "Person"]\n'
        '[[relations]]\nname = "directed_by"\ndomain = "Movie"\nrange = "Person"\n'
    )
    assert load_ontology(tmp_path / "o.json") == load_ontology(tmp_path / "o.toml")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"relations": [{"name": "x", "domain": "Movie", "range": "Place"}]}, "relations[0].range"),
        (
            {"relations": [{"name": "x", "domain": "Movie", "range": "Person"}] * 2},
            "relations[1].name",
        ),
        ({"item_type": "Book"}, "item_type"),
        ({"types": ["Movie", "Person", "movie"]}, "types[2]"),
        (
            {"relations": [{"name": "bad name", "domain": "Movie", "range": "Movie"}]},
            "relations[0].name",
        ),
        (
            {"relations": [{"name": "x", "domain": "Movie", "range": "Movie", "funcional": True}]},
            "relations[0].funcional",
        ),
    ],
)
def test_invalid_ontologies_name_the_field(tmp_path: Path, change: dict, field: str) -> None:
    path = tmp_path / "o.json"
    path.write_text(json.dumps({**GOOD, **change}))
    with pytest.raises(InputError) as info:
        load_ontology(path)
    assert (info.value.file, info.value.field) == (str(path), field)


def test_syntax_error_has_line(tmp_path: Path) -> None:
    path = tmp_path / "o.json"
    path.write_text('{\n"types": [\n')
    with pytest.raises(InputError) as info:
        load_ontology(path)
    assert info.value.line is not None
