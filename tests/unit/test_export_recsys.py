"""RippleNet and RecBole exports: indexing conventions, ratings, read-back round trips, and the
consumers' own rules (RippleNet's loader sizes its tables from the files; RecBole drops
interactions of unlinked items)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from kgenrich.errors import ExportError
from kgenrich.flows.io import write_exports
from kgenrich.kg.export.jsonl import read_jsonl
from kgenrich.kg.export.recbole import write_recbole
from kgenrich.kg.export.ripplenet import Interaction, write_ripplenet
from kgenrich.kg.io.interactions import read_interaction_table, read_interactions
from kgenrich.kg.io.seed import read_seed
from kgenrich.kg.records import Decision, Entity, Ontology, Provenance, SourceKind, Triple
from kgenrich.settings import ExportSettings

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDS = read_jsonl(DATA / "golden_records")
SHARED_ML = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "movielens-100k"
SEED = Provenance(source=SourceKind.SEED, decision=Decision.TRUSTED)
# The golden records use `produced_by`, which the movies ontology lacks: a seed reader rejects
# such triples unless its relation map names the relation.
KEEP = {"produced_by": "produced_by"}


def _rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def _genre_triples(items: Sequence[str]) -> list[Triple]:
    """One triple per item, so no item is dropped as having none."""
    return [Triple(head=f"item/{i}", relation="has_genre", tail="genre/drama", provenance=SEED)
            for i in items]


def original_loader_sizes(folder: Path) -> tuple[int, int, np.ndarray, np.ndarray]:
    """`n_entity`, `n_item`, the KG and the ratings as hwwang55/RippleNet's data_loader.py reads
    them: `n_entity = len(set(heads) | set(tails))` sizes its entity embedding table."""
    kg = np.loadtxt(folder / "kg_final.txt", dtype=np.int32).reshape(-1, 3)
    ratings = np.loadtxt(folder / "ratings_final.txt", dtype=np.int32).reshape(-1, 3)
    n_entity = len(set(kg[:, 0]) | set(kg[:, 2]))
    n_item = len(_rows(folder / "item_index2entity_id.txt"))
    return n_entity, n_item, kg, ratings


def assert_original_loader_fits(folder: Path) -> None:
    n_entity, n_item, kg, ratings = original_loader_sizes(folder)
    assert int(kg[:, [0, 2]].max()) < n_entity  # nn.Embedding(n_entity, dim) covers every id
    assert int(ratings[:, 1].max()) < n_item <= n_entity
    items = [int(e) for _, e in _rows(folder / "item_index2entity_id.txt")]
    assert items == list(range(n_item))
    assert set(items) <= set(kg[:, 0]) | set(kg[:, 2])  # every item has a triple


def test_ripplenet_items_first_and_round_trip(tmp_path: Path, movies: Ontology) -> None:
    out = tmp_path / "ripple"
    counts = write_ripplenet(out, entities=RECORDS.entities, triples=RECORDS.triples)
    assert counts == {"items": 2, "entities": 6, "relations": 4, "triples": 5, "dropped_items": 0}
    # Items first (sorted ids), as RippleNet expects.
    assert _rows(out / "item_index2entity_id.txt") == [["m 2", "0"], ["m1", "1"]]
    index = dict((i, e) for i, e in _rows(out / "entity_index.tsv")[1:])
    assert index["0"] == "item/m 2" and index["1"] == "item/m1"
    back = read_seed(out / "kg_final.txt", ontology=movies, relation_map=KEEP)
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
        triples=_genre_triples(items),
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
        triples=_genre_triples(items),
        items=items,
        interactions=interactions,
        rating_threshold=4,
        seed=1,
    )
    assert (again / "ratings_final.txt").read_text() == (out / "ratings_final.txt").read_text()


def test_recbole_round_trip(tmp_path: Path, movies: Ontology) -> None:
    out = tmp_path / "mini"
    counts = write_recbole(out, entities=RECORDS.entities, triples=RECORDS.triples)
    assert counts == {"triples": 5, "links": 2, "dropped_items": 0}
    assert _rows(out / "mini.kg")[0] == ["head_id:token", "relation_id:token", "tail_id:token"]
    assert _rows(out / "mini.link") == [
        ["item_id:token", "entity_id:token"],
        ["m 2", "item/m 2"],
        ["m1", "item/m1"],
    ]
    back = read_seed(out / "mini.kg", ontology=movies, relation_map=KEEP)
    assert {t.key for t in back.triples} == {t.key for t in RECORDS.triples}
    types = {e.id: e.type for e in back.entities}
    assert types["person/john-lasseter"] == "Person" and types["item/m 2"] == "Movie"


def test_recbole_rejects_tabs_and_leaves_no_files(tmp_path: Path) -> None:
    bad = RECORDS.triples[0].model_copy(update={"tail": "person/a\tb"})
    with pytest.raises(ExportError, match="tab"):
        write_recbole(tmp_path / "x", entities=[], triples=[bad])
    assert list((tmp_path / "x").iterdir()) == []


def test_ripplenet_drops_items_without_a_triple_and_fits_the_original_loader(
    tmp_path: Path, movies: Ontology,
) -> None:
    items = ["a", "b", "c", "d", "e"]
    has_triple = ["b", "d", "e"]
    triples = [*_genre_triples(has_triple),
               Triple(head="item/d", relation="directed_by", tail="person/p", provenance=SEED)]
    entities = [Entity(id=f"item/{i}", label=i, type="Movie") for i in items]
    interactions = [Interaction(user=u, item=i, rating=5) for u in ("u1", "u2")
                    for i in ("a", "b", "c", "d")]
    interactions.append(Interaction(user="u1", item="zzz", rating=5))  # not an item at all
    out = tmp_path / "ripple"
    counts = write_ripplenet(out, entities=entities, triples=triples, items=items,
                             interactions=interactions, rating_threshold=4, seed=0)
    assert counts["items"] == 3 and counts["dropped_items"] == 2
    assert counts["dropped_interactions"] == 4 and counts["skipped_interactions"] == 1
    assert _rows(out / "item_index2entity_id.txt") == [["b", "0"], ["d", "1"], ["e", "2"]]
    assert_original_loader_fits(out)
    n_entity, _, _, ratings = original_loader_sizes(out)
    assert n_entity == counts["entities"] == 5  # b, d, e, genre/drama, person/p: no gaps
    assert sorted({int(i) for i in ratings[ratings[:, 2] == 1, 1]}) == [0, 1]  # b and d
    # kgenrich reads the export back with the same ids.
    back = read_seed(out / "kg_final.txt", ontology=movies, relation_map=KEEP)
    assert dict(back.item_links) == {"b": "item/b", "d": "item/d", "e": "item/e"}


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_ML.is_dir(), reason=f"{SHARED_ML} is absent (no ../shared/data)")
def test_ml100k_export_fits_the_original_ripplenet_loader(tmp_path: Path, movies: Ontology) -> None:
    seed = read_seed(SHARED_ML / "imdb_auxiliary.txt", ontology=movies, on_error="skip")
    table = read_interaction_table(SHARED_ML / "ml-100k.inter")
    items = sorted(set(table.items), key=int)
    counts = write_ripplenet(tmp_path / "ripple", entities=seed.entities, triples=seed.triples,
                             items=items, interactions=table.records())
    # 8 MovieLens items have no IMDb triple; preprocess.py keeps only items in the KG.
    assert counts["dropped_items"] == 8 and counts["dropped_interactions"] == 26
    assert_original_loader_fits(tmp_path / "ripple")
    rec = write_recbole(tmp_path / "ml", entities=seed.entities, triples=seed.triples,
                        interactions=table)
    assert rec["dropped_interactions"] == 26 and rec["links"] == counts["items"]


def test_recbole_inter_is_copied_as_given_and_link_lists_items_with_a_triple(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.inter"
    source.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                      "1\ta\t5\t100\n1\tb\t3\t101\n2\tc\t4\t102\n2\tq\t4\t103\n",
                      encoding="utf-8")
    entities = [Entity(id=f"item/{i}", label=i, type="Movie") for i in "abc"]
    out = tmp_path / "recbole" / "ml"
    counts = write_recbole(out, entities=entities, triples=_genre_triples(["a", "c"]),
                           interactions=read_interaction_table(source))
    assert (out / "ml.inter").read_bytes() == source.read_bytes()
    assert _rows(out / "ml.link")[1:] == [["a", "item/a"], ["c", "item/c"]]
    # b has no triple, q is not in the graph: RecBole's link filter drops both rows.
    assert counts == {"triples": 2, "links": 2, "dropped_items": 1, "inter_rows": 4,
                      "dropped_interactions": 2}


def test_recbole_csv_interactions_become_recbole_columns(tmp_path: Path) -> None:
    csv = tmp_path / "ratings.csv"
    csv.write_text("userId,movieId,rating,timestamp\n1,a,5,881250949\n2,a,3.5,881250950\n",
                   encoding="utf-8")
    write_recbole(tmp_path / "x", entities=[], triples=_genre_triples(["a"]),
                  interactions=read_interaction_table(csv))
    assert _rows(tmp_path / "x" / "x.inter") == [
        ["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
        ["1", "a", "5", "881250949"],
        ["2", "a", "3.5", "881250950"],
    ]
    assert read_interactions(tmp_path / "x" / "x.inter") == read_interactions(csv)
    implicit = tmp_path / "implicit.csv"
    implicit.write_text("user,item,timestamp\n1,a,2020-01-01\n", encoding="utf-8")
    write_recbole(tmp_path / "y", entities=[], triples=[],
                  interactions=read_interaction_table(implicit))
    # a date is not RecBole's float timestamp: the column is left out, not guessed
    assert _rows(tmp_path / "y" / "y.inter") == [["user_id:token", "item_id:token"], ["1", "a"]]


def test_exports_write_the_recbole_dataset_folder_with_inter(tmp_path: Path) -> None:
    inter = tmp_path / "ratings.csv"
    inter.write_text("user_id,item_id,rating\n1,m1,5\n1,m 2,4\n2,gone,5\n", encoding="utf-8")
    written = write_exports(
        tmp_path / "out", entities=RECORDS.entities, triples=RECORDS.triples,
        items=["m1", "m 2", "gone"], interactions=inter,
        settings=ExportSettings(formats=("ripplenet", "recbole"), recbole_dataset="films"))
    folder = tmp_path / "out" / "recbole" / "films"
    assert written.paths["recbole"] == folder
    for ext in ("inter", "kg", "link"):
        assert (folder / f"films.{ext}").is_file(), ext
    assert written.counts["recbole"]["dropped_interactions"] == 1
    assert written.counts["ripplenet"]["dropped_items"] == 1
    assert written.counts["ripplenet"]["dropped_interactions"] == 1
    assert_original_loader_fits(tmp_path / "out" / "ripplenet")
