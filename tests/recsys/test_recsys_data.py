"""Loaders: round trips through every exported format, and errors that name file, line, field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kgenrich.recsys.data import (
    load_kg,
    load_ratings,
    load_recbole,
    load_ripplenet_dir,
    make_ripple_data,
    split_indices,
    with_kg,
)
from kgenrich.recsys.errors import DataFormatError

RATINGS = np.array([[0, 0, 1], [0, 3, 0], [1, 2, 1], [1, 0, 0], [2, 1, 1], [2, 4, 0]])
KG = np.array([[0, 0, 5], [1, 0, 5], [2, 1, 6], [5, 2, 7]])


def _write_txt(path: Path, rows: np.ndarray) -> None:
    path.write_text("".join("\t".join(str(v) for v in row) + "\n" for row in rows))


def test_ripplenet_txt_round_trip(tmp_path: Path) -> None:
    _write_txt(tmp_path / "ratings_final.txt", RATINGS)
    _write_txt(tmp_path / "kg_final.txt", KG)
    data = load_ripplenet_dir(tmp_path)
    np.testing.assert_array_equal(data.ratings, RATINGS)
    np.testing.assert_array_equal(data.kg, KG)
    assert (data.n_users, data.n_items, data.n_entities, data.n_relations) == (3, 5, 8, 3)
    assert not data.ratings.flags.writeable


def test_ripplenet_npy_is_preferred_and_round_trips(tmp_path: Path) -> None:
    np.save(tmp_path / "ratings_final.npy", RATINGS.astype(np.int32))
    _write_txt(tmp_path / "ratings_final.txt", RATINGS[:2])  # must be ignored
    _write_txt(tmp_path / "kg_final.txt", KG)
    data = load_ripplenet_dir(tmp_path)
    np.testing.assert_array_equal(data.ratings, RATINGS)
    assert data.ratings.dtype == np.int64


def test_missing_kg_means_no_kg(tmp_path: Path) -> None:
    _write_txt(tmp_path / "ratings_final.txt", RATINGS)
    data = load_ripplenet_dir(tmp_path)
    assert data.kg.shape == (0, 3)
    assert data.n_relations == 0 and data.n_entities == data.n_items


def test_with_kg_keeps_ratings_and_never_shrinks_entities() -> None:
    data = make_ripple_data(ratings=RATINGS, kg=KG)
    bare = with_kg(data, kg=None, label="no-kg")
    np.testing.assert_array_equal(bare.ratings, data.ratings)
    assert bare.kg.shape == (0, 3) and bare.n_entities == data.n_entities
    assert bare.source == "no-kg"


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ids=arrays(np.int64, st.tuples(st.integers(1, 30), st.just(2)), elements=st.integers(0, 10**6)),
    labels=st.data(),
)
def test_txt_round_trip_property(tmp_path: Path, ids: np.ndarray, labels: st.DataObject) -> None:
    lab = np.array(labels.draw(st.lists(st.integers(0, 1), min_size=len(ids), max_size=len(ids))))
    rows = np.column_stack([ids, lab])
    path = tmp_path / "r.txt"
    _write_txt(path, rows)
    np.testing.assert_array_equal(load_ratings(path), rows)


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("0 1 1\n0 2 0\n1 2 x\n", 3, "label"),
        ("0 1 1\n\n0 2\n", 3, "row"),
        ("0 1 1\n\n0 2 5\n", 3, "label"),
        ("0 1 1\n0 -2 0\n", 2, "item"),
        ("0 1 1\n0 2 3\n", 2, "label"),
        ("a 1 1\n", 1, "user"),
        ("0 1 1\n0 2 0.5\n", 2, "label"),
    ],
)
def test_bad_rating_rows_name_file_line_field(
    tmp_path: Path, text: str, line: int, field: str
) -> None:
    path = tmp_path / "ratings_final.txt"
    path.write_text(text)
    with pytest.raises(DataFormatError) as info:
        load_ratings(path)
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), line, field)
    assert str(path) in str(err) and f"line {line}" in str(err) and field in str(err)


def test_bad_kg_row(tmp_path: Path) -> None:
    path = tmp_path / "kg_final.txt"
    path.write_text("0 0 5\n1 0 5 9\n")
    with pytest.raises(DataFormatError) as info:
        load_kg(path)
    assert (info.value.line, info.value.field) == (2, "row")
    path.write_text("0 0 5\n1 r 5\n")
    with pytest.raises(DataFormatError) as info:
        load_kg(path)
    assert (info.value.line, info.value.field) == (2, "relation")


def test_bad_npy_label(tmp_path: Path) -> None:
    bad = RATINGS.copy()
    bad[4, 2] = 2
    np.save(tmp_path / "ratings_final.npy", bad)
    with pytest.raises(DataFormatError) as info:
        load_ratings(tmp_path / "ratings_final.npy")
    assert (info.value.line, info.value.field) == (5, "label")


# --- RecBole atomic files --------------------------------------------------------------------

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "u1\tm1\t5\t1\n"
    "u1\tm2\t4\t2\n"
    "u1\tm3\t1\t3\n"
    "u2\tm2\t5\t4\n"
    "u3\tm4\t2\t5\n"  # u3 has no positive: dropped
    "u2\tm5\t3\t6\n"
)
KG_FILE = (
    "head_id:token\trelation_id:token\ttail_id:token\n"
    "e1\tdirected_by\tp1\n"
    "e2\tdirected_by\tp1\n"
    "e5\tgenre\tg1\n"
    "p1\tborn_in\tc1\n"
)
LINK = "item_id:token\tentity_id:token\nm1\te1\nm2\te2\nm5\te5\nm9\te9\n"


def _recbole(tmp_path: Path, inter: str = INTER, kg: str = KG_FILE, link: str = LINK) -> tuple[
    Path, Path, Path
]:
    paths = (tmp_path / "x.inter", tmp_path / "x.kg", tmp_path / "x.link")
    for path, text in zip(paths, (inter, kg, link), strict=True):
        path.write_text(text)
    return paths


def test_recbole_round_trip(tmp_path: Path) -> None:
    inter, kg, link = _recbole(tmp_path)
    data = load_recbole(inter, kg, link, rating_threshold=4, seed=3)
    items = ["m1", "m2", "m3", "m4", "m5"]  # sorted tokens -> 0..4
    pos = data.ratings[data.ratings[:, 2] == 1]
    neg = data.ratings[data.ratings[:, 2] == 0]
    # users u1 -> 0, u2 -> 1 (u3 has no positive)
    assert {tuple(r) for r in pos[:, :2]} == {(0, 0), (0, 1), (1, 1)}
    assert data.n_users == 2 and data.n_items == len(items)
    rated = {0: {0, 1, 2}, 1: {1, 4}}
    for user, item in neg[:, :2]:
        assert item not in rated[user]  # negatives come from items the user never rated
    assert np.bincount(neg[:, 0]).tolist() == [2, 1]  # as many negatives as positives
    # entities: items 0..4, then c1, g1, p1 in token order -> 5, 6, 7; relations sorted
    expected = {(0, 1, 7), (1, 1, 7), (4, 2, 6), (7, 0, 5)}
    assert {tuple(r) for r in data.kg} == expected
    assert (data.n_entities, data.n_relations) == (8, 3)


def test_recbole_negatives_are_seeded(tmp_path: Path) -> None:
    inter, kg, link = _recbole(tmp_path)
    a = load_recbole(inter, kg, link, rating_threshold=4, seed=1)
    b = load_recbole(inter, kg, link, rating_threshold=4, seed=1)
    np.testing.assert_array_equal(a.ratings, b.ratings)


def test_recbole_without_kg_or_link(tmp_path: Path) -> None:
    inter, _, _ = _recbole(tmp_path)
    data = load_recbole(inter, rating_threshold=4)
    assert data.kg.shape == (0, 3) and data.n_entities == data.n_items


@pytest.mark.parametrize(
    ("which", "text", "line", "field"),
    [
        ("inter", "user_id:token\titem_id:token\trating:float\nu1\tm1\t5\nu1\tm2\tfive\n", 3,
         "rating"),
        ("inter", "user_id:token\trating:float\nu1\t5\n", 1, "item_id"),
        ("inter", "user_id:token\titem_id:token\trating:float\nu1\tm1\t5\nu2\tm1\n", 3, "row"),
        ("inter", "user_id:token\titem_id:token\trating:float\nu1\t\t5\n", 2, "item_id"),
        ("inter", "user_id\titem_id:token\n", 1, "user_id"),
        ("kg", "head_id:token\trelation_id:token\ttail_id:token\ne1\tr\n", 2, "row"),
        ("link", "item_id:token\tentity_id:token\nm1\te1\nm2\te1\n", 3, "entity_id"),
        ("link", "item_id:token\tentity_id:token\nm1\te1\nm1\te7\n", 3, "item_id"),
    ],
)
def test_recbole_errors_name_file_line_field(
    tmp_path: Path, which: str, text: str, line: int, field: str
) -> None:
    files = {"inter": INTER, "kg": KG_FILE, "link": LINK} | {which: text}
    inter, kg, link = _recbole(tmp_path, files["inter"], files["kg"], files["link"])
    with pytest.raises(DataFormatError) as info:
        load_recbole(inter, kg, link, rating_threshold=4)
    err = info.value
    assert err.file == str(tmp_path / f"x.{which}")
    assert (err.line, err.field) == (line, field)


def test_split_indices_partition_and_determinism() -> None:
    a = split_indices(1000, seed=7)
    b = split_indices(1000, seed=7)
    c = split_indices(1000, seed=8)
    assert (a.train.size, a.valid.size, a.test.size) == (600, 200, 200)
    joined = np.concatenate([a.train, a.valid, a.test])
    np.testing.assert_array_equal(np.sort(joined), np.arange(1000))
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test, c.test)
    with pytest.raises(ValueError):
        split_indices(10, seed=0, ratios=(0.5, 0.5, 0.5))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 8), st.integers(1, 5)), min_size=1,
        max_size=40,
    ),
    threshold=st.integers(1, 5),
)
def test_recbole_labelling_property(
    tmp_path: Path, rows: list[tuple[int, int, int]], threshold: int
) -> None:
    path = tmp_path / "p.inter"
    path.write_text(
        "user_id:token\titem_id:token\trating:float\n"
        + "".join(f"u{u}\ti{i}\t{r}\n" for u, i, r in rows)
    )
    if all(r < threshold for _, _, r in rows):
        with pytest.raises(DataFormatError):
            load_recbole(path, rating_threshold=threshold)
        return
    data = load_recbole(path, rating_threshold=threshold, seed=0)
    items = sorted({f"i{i}" for _, i, _ in rows})
    users = sorted({f"u{u}" for u, _, r in rows if r >= threshold})
    rated = {(users.index(f"u{u}"), items.index(f"i{i}")) for u, i, _ in rows if f"u{u}" in users}
    positives = {
        (users.index(f"u{u}"), items.index(f"i{i}")) for u, i, r in rows if r >= threshold
    }
    got_pos = {(int(u), int(i)) for u, i, lab in data.ratings if lab == 1}
    got_neg = [(int(u), int(i)) for u, i, lab in data.ratings if lab == 0]
    assert got_pos == positives
    assert len(set(got_neg)) == len(got_neg) and not set(got_neg) & rated
    for user in range(len(users)):
        n_pos = sum(1 for u, _ in positives if u == user)
        n_rated = sum(1 for u, _ in rated if u == user)
        n_neg = sum(1 for u, _ in got_neg if u == user)
        assert n_neg == min(n_pos, len(items) - n_rated)
