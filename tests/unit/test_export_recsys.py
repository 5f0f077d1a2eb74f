"""RippleNet and RecBole exports: indexing conventions, ratings, and read-back round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgenrich.errors import ExportError
from kgenrich.kg.export.jsonl import read_jsonl
from kgenrich.kg.export.recbole import write_recbole
from kgenrich.kg.export.ripplenet import Interaction, write_ripplenet
from kgenrich.kg.io.seed import read_seed
from kgenrich.kg.records import Ontology

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDS = read_jsonl(DATA / "golden_records")


def _rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def test_ripplenet_items_first_and_round_trip(tmp_path: Path, movies: Ontology) -> None:
    out = tmp_path / "ripple"
    counts = write_ripplenet(out, entities=RECORDS.entities, triples=RECORDS.triples)
    assert counts == {"items": 2, "entities": 6, "relations": 4, "triples": 5}
    # Items first (sorted ids), as RippleNet expects.
    assert _rows(out / "item_index2entity_id.txt") == [["m 2", "0"], ["m1", "1"]]
    index = dict((i, e) for i, e in _rows(out / "entity_index.tsv")[1:])
    assert index["0"] == "item/m 2" and index["1"] == "item/m1"
    back = read_seed(out / "kg_final.txt", ontology=movies)
    assert {t.key for t in back.triples} == {t.key for t in RECORDS.triples}
    assert dict(back.item_links) == {"m1": "item/m1", "m 2": "item/m 2"}


def test_ripplenet_ratings_follow_the_original_sampling(tmp_path: Path) -> None:
    items = [f"i{n}" for n in range(10)]
    interactions = [
        Interaction(user="u1", item="i0", rating=5),
        Interaction(user="u1", item="i1", rating=4),
        Interaction(user="u1", item="i2", rating=1),  # rated low: never a sampled negative
        Interaction(user="u2", item="i3", rating=2),  # no positive: user dropped
        Interaction(user="u3", item="i4"),  # implicit feedback
        Interaction(user="u3", item="nope"),  # not an item: skipped
    ]
    out = tmp_path / "ripple"
    counts = write_ripplenet(
        out,
        entities=[],
        triples=[],
        items=items,
        interactions=interactions,
        rating_threshold=4,
        seed=1,
    )
    assert counts["users"] == 2 and counts["skipped_interactions"] == 1
    rows = [tuple(map(int, r)) for r in _rows(out / "ratings_final.txt")]
    u1 = [r for r in rows if r[0] == 0]
    assert sorted(r[1] for r in u1 if r[2] == 1) == [0, 1]
    negatives = [r[1] for r in u1 if r[2] == 0]
    assert len(negatives) == 2 and not {0, 1, 2} & set(negatives)
    assert _rows(out / "user_index.tsv")[1:] == [["0", "u1"], ["1", "u3"]]
    again = tmp_path / "again"
    write_ripplenet(
        again,
        entities=[],
        triples=[],
        items=items,
        interactions=interactions,
        rating_threshold=4,
        seed=1,
    )
    assert (again / "ratings_final.txt").read_text() == (out / "ratings_final.txt").read_text()


def test_recbole_round_trip(tmp_path: Path, movies: Ontology) -> None:
    out = tmp_path / "mini"
    counts = write_recbole(out, entities=RECORDS.entities, triples=RECORDS.triples)
    assert counts == {"triples": 5, "links": 2}
    assert _rows(out / "mini.kg")[0] == ["head_id:token", "relation_id:token", "tail_id:token"]
    assert _rows(out / "mini.link") == [
        ["item_id:token", "entity_id:token"],
        ["m 2", "item/m 2"],
        ["m1", "item/m1"],
    ]
    back = read_seed(out / "mini.kg", ontology=movies)
    assert {t.key for t in back.triples} == {t.key for t in RECORDS.triples}
    types = {e.id: e.type for e in back.entities}
    assert types["person/john-lasseter"] == "Person" and types["item/m 2"] == "Movie"


def test_recbole_rejects_tabs_and_leaves_no_files(tmp_path: Path) -> None:
    bad = RECORDS.triples[0].model_copy(update={"tail": "person/a\tb"})
    with pytest.raises(ExportError, match="tab"):
        write_recbole(tmp_path / "x", entities=[], triples=[bad])
    assert list((tmp_path / "x").iterdir()) == []
