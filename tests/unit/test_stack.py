"""Stacked verifier and graph features on small hand-made inputs (no data files)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kgenrich.verification.features import FEATURE_NAMES, GraphFeatures
from kgenrich.verification.kge import LabeledTriple
from kgenrich.verification.stack import StackedClassifier, stratified_folds


def _toy(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relation A: true when x0 is high; relation B: true when x0 is low (x1 is noise)."""
    rng = np.random.default_rng(seed)
    y = np.tile([1, 0], n)
    rel = np.array(["A"] * n + ["B"] * n, dtype=object)
    sign = np.where(rel == "A", 1.0, -1.0)
    x0 = sign * np.where(y == 1, 1.0, -1.0) * rng.uniform(0.5, 1.5, 2 * n)
    return np.column_stack([x0, rng.normal(size=2 * n)]), y, rel


def test_separable_toy_set_is_classified_perfectly() -> None:
    rng = np.random.default_rng(1)
    y = np.tile([1, 0], 50)
    x = np.column_stack([np.where(y == 1, 2.0, -2.0) + rng.normal(0, 0.3, 100)])
    rel = np.array(["P1"] * 100, dtype=object)
    stacker = StackedClassifier.fit(x, y, rel, feature_names=["s"])

    assert (stacker.decide(x, rel) == y.astype(bool)).all()
    assert stacker.cv_accuracy == 1.0
    p = stacker.probability(x, rel)
    assert p[y == 1].min() > 0.5 > p[y == 0].max()


def test_per_relation_weights_learn_opposite_signs() -> None:
    x, y, rel = _toy()
    own = StackedClassifier.fit(x, y, rel, feature_names=["x0", "x1"], min_per_relation=20)
    shared = StackedClassifier.fit(x, y, rel, feature_names=["x0", "x1"], min_per_relation=10**9)

    assert own.relations == ("A", "B")
    assert shared.relations == ()
    assert (own.decide(x, rel) == y.astype(bool)).mean() > 0.95
    # one shared weight cannot serve both relations
    assert (shared.decide(x, rel) == y.astype(bool)).mean() < 0.7


def test_rare_and_one_class_relations_fall_back_to_shared_weights() -> None:
    x, y, rel = _toy()
    rare_x = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    x = np.vstack([x, rare_x, rare_x])
    y = np.concatenate([y, [1, 0, 1], [1, 1, 1]])
    rel = np.concatenate([rel, ["RARE"] * 3, ["ONECLASS"] * 3])
    stacker = StackedClassifier.fit(x, y, rel, feature_names=["x0", "x1"], min_per_relation=3)

    assert "RARE" in stacker.relations  # 3 examples, both classes
    assert "ONECLASS" not in stacker.relations
    unseen = stacker.probability(np.array([[0.3, 0.1]]), np.array(["NEVER_SEEN"], dtype=object))
    z = (np.array([0.3, 0.1]) - np.array(stacker.mean)) / np.array(stacker.scale)
    expected = 1 / (1 + math.exp(-(z @ np.array(stacker.coef[:2]) + stacker.intercept)))
    assert unseen[0] == pytest.approx(expected)


def test_nan_features_give_nan_probability_and_rejection() -> None:
    x, y, rel = _toy()
    x_nan = x.copy()
    x_nan[0, 0] = math.nan
    stacker = StackedClassifier.fit(x_nan, y, rel, feature_names=["x0", "x1"])

    assert math.isnan(stacker.probability(x_nan[:1], rel[:1])[0])
    assert not stacker.decide(x_nan[:1], rel[:1])[0]


def test_regularization_is_chosen_by_cross_validation() -> None:
    x, y, rel = _toy()
    grid = (0.01, 1.0)
    stacker = StackedClassifier.fit(x, y, rel, feature_names=["x0", "x1"], c_grid=grid)

    assert set(stacker.selection) == set(grid)
    assert stacker.c in grid
    assert stacker.selection[stacker.c] == max(stacker.selection.values())
    assert stacker.cv_accuracy == max(stacker.selection.values())


def test_fit_rejects_mismatched_inputs() -> None:
    x, y, rel = _toy()
    with pytest.raises(ValueError):
        StackedClassifier.fit(x, y, rel, feature_names=["only_one"])
    with pytest.raises(ValueError):
        StackedClassifier.fit(x, np.ones_like(y), rel, feature_names=["x0", "x1"])


def test_stratified_folds_spread_each_label() -> None:
    y = np.array([1] * 10 + [0] * 20)
    folds = stratified_folds(y, n_folds=5, seed=0)
    for k in range(5):
        assert (y[folds == k] == 1).sum() == 2
        assert (y[folds == k] == 0).sum() == 4


def _family_graph() -> list[LabeledTriple]:
    # person_i born in city_(i % 3); city_c lies in country_(c % 2); citizenship follows
    triples: list[LabeledTriple] = []
    for c in range(3):
        triples.append((f"city{c}", "in_country", f"country{c % 2}"))
    for i in range(12):
        triples.append((f"person{i}", "born_in", f"city{i % 3}"))
        triples.append((f"person{i}", "citizen_of", f"country{(i % 3) % 2}"))
    return triples


def test_graph_features_mine_a_two_step_rule() -> None:
    train = _family_graph()
    graph = GraphFeatures.fit(train, min_support=3)
    bodies = {rule.body: rule.confidence for rule in graph.rules["citizen_of"]}
    assert bodies[(("born_in", 1), ("in_country", 1))] == pytest.approx(1.0)

    # a new person born in city1 -> citizen of country1 fires the rule; country0 does not
    train_plus = [*train, ("newbie", "born_in", "city1")]
    graph = GraphFeatures.fit(train_plus, min_support=3)
    x = graph.features([("newbie", "citizen_of", "country1"), ("newbie", "citizen_of", "country0")])
    col = FEATURE_NAMES.index("rule_max_confidence")
    assert x.shape == (2, len(FEATURE_NAMES))
    # newbie's own path counts against the rule's confidence: 12 of 13 born-in-city1-ers
    assert x[0, col] == pytest.approx(12 / 13)
    assert x[1, col] == 0.0


def test_graph_features_count_train_only_and_handle_unseen_labels() -> None:
    graph = GraphFeatures.fit(_family_graph(), min_support=3)
    x = graph.features([("person0", "citizen_of", "country0"), ("ghost", "haunts", "nowhere")])
    names = list(FEATURE_NAMES)
    assert x[0, names.index("head_has_relation")] == 1.0
    assert x[0, names.index("log_head_relation_count")] == pytest.approx(math.log(2))
    assert np.isfinite(x).all()
    assert (x[1] == 0).all()


def test_benchmark_stacker_never_sees_test_labels() -> None:
    """Swapping test positives and negatives leaves everything fitted on valid unchanged."""
    from bench.verify import stacked_classification
    from kgenrich.verification.kge import train_verifier

    train = _family_graph()
    people = [f"person{i}" for i in range(12)]
    valid = [(p, "citizen_of", f"country{(i % 3) % 2}") for i, p in enumerate(people)]
    valid_neg = [(p, "citizen_of", f"country{1 - (i % 3) % 2}") for i, p in enumerate(people)]
    model = train_verifier(train, model="ComplEx", dim=4, epochs=1, seed=0, num_threads=1)
    graph = GraphFeatures.fit(train, min_support=3)
    data = {"train": train, "valid": valid, "valid_negatives": valid_neg}
    first = stacked_classification(
        model, {**data, "test": valid[:4], "test_negatives": valid_neg[:4]}, graph
    )
    swapped = stacked_classification(
        model, {**data, "test": valid_neg[:4], "test_negatives": valid[:4]}, graph
    )
    assert first["calibrator"] == swapped["calibrator"]
    assert first["valid_in_sample"] == swapped["valid_in_sample"]
    assert first["test"]["accuracy"] + swapped["test"]["accuracy"] == pytest.approx(1.0)


def test_benchmark_model_kwargs_reach_pykeen_and_bad_json_is_refused(tmp_path) -> None:
    """``--model-kwargs`` is parsed as a JSON object, trains with it, and is recorded."""
    import argparse
    import json

    from bench.verify import _json_object, main

    with pytest.raises(argparse.ArgumentTypeError):
        _json_object("[1, 2]")
    with pytest.raises(argparse.ArgumentTypeError):
        _json_object("{not json")
    data = tmp_path / "kg"
    data.mkdir()
    train = _family_graph()
    people = [f"person{i}" for i in range(12)]
    valid = [(p, "citizen_of", f"country{(i % 3) % 2}") for i, p in enumerate(people)]
    wrong = [(p, "citizen_of", f"country{1 - (i % 3) % 2}") for i, p in enumerate(people)]
    for name, rows in (
        ("train", train),
        ("valid", valid[:6]),
        ("valid_negatives", wrong[:6]),
        ("test", valid[6:]),
        ("test_negatives", wrong[6:]),
    ):
        (data / f"{name}.txt").write_text("".join("\t".join(t) + "\n" for t in rows))
    kwargs = {"regularizer": "lp", "regularizer_kwargs": {"p": 3.0, "weight": 0.01}}
    out = tmp_path / "report.json"
    code = main(
        ["--data", str(data), "--model", "ComplEx", "--dim", "4", "--epochs", "2",
         "--eval-every", "1", "--num-threads", "1", "--model-kwargs", json.dumps(kwargs),
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    run = json.loads(out.read_text())["runs"][0]
    assert run["config"]["model_kwargs"] == kwargs
