"""Real data sets in ../shared/data: read them and check their published counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgenrich.data import ontology
from kgenrich.errors import InputError
from kgenrich.kg.io.catalog import CatalogMapping, read_catalog
from kgenrich.kg.io.seed import read_seed
from kgenrich.kg.ontology import load_ontology
from kgenrich.kg.records import Ontology

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
ML = SHARED / "movielens-100k"
BX = SHARED / "book-crossing"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (no ../shared/data)"),
]


def test_ml100k_item_catalog() -> None:
    mapping = CatalogMapping(
        id="item_id",
        title="movie_title",
        attributes={"class": "has_genre", "release_year": "release_year"},
    )
    items = read_catalog(ML / "ml-100k.item", mapping=mapping)
    assert len(items) == 1682
    assert items[0].title == "Toy Story"


def _names_all_relations(lines: list[str], column: int) -> dict[str, str]:
    """A relation map that names (and keeps) every relation of the file: the data sets' opaque
    relations are not the ontology's, so without a map every triple is rejected."""
    return {r: r for r in {line.split()[column] for line in lines if line.strip()}}


def test_ml100k_recbole_kg_and_link(movies: Ontology) -> None:
    lines = (ML / "ml-100k.kg").read_text(encoding="utf-8").splitlines()[1:]
    assert not read_seed(ML / "ml-100k.kg", ontology=movies).triples
    g = read_seed(ML / "ml-100k.kg", ontology=movies,
                  relation_map=_names_all_relations(lines, 1))
    assert g.counts["triples"] == 91_631
    assert g.counts["entities"] == 34_628
    assert len(g.item_links) == 1_598
    assert sum(1 for e in g.entities if e.type == "Movie") == 1_598


def test_imdb_auxiliary_has_one_malformed_line(movies: Ontology) -> None:
    with pytest.raises(InputError) as info:
        read_seed(ML / "imdb_auxiliary.txt", ontology=movies)
    assert (info.value.line, info.value.field) == (1576, "id")  # "id:1581:genre:Mystery|..."
    g = read_seed(ML / "imdb_auxiliary.txt", ontology=movies, on_error="skip")
    assert len(g.rejected) == 1
    assert len(g.item_links) == 1_674
    relations = {t.relation for t in g.triples}
    assert relations == {"has_genre", "directed_by", "starring"}
    assert g.counts["triples"] == 12_305


def test_book_crossing_ripplenet() -> None:
    books = load_ontology(ontology("books"))
    lines = (BX / "kg_final.txt").read_text(encoding="utf-8").splitlines()
    g = read_seed(BX / "kg_final.txt", ontology=books,
                  relation_map=_names_all_relations(lines, 1))
    assert g.counts["triples"] == 151_500
    assert g.counts["entities"] == 77_903
    assert len({t.relation for t in g.triples}) == 25
    assert len(g.item_links) == 14_967
