"""Warm-starting the KGE verifier (verification/kge.py `init`, scorers' `previous`): rows are
carried over by label, new labels get fresh rows, and the holdout avoids what the old model saw."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pykeen.training import LCWATrainingLoop
from pykeen.triples import TriplesFactory

from kgenrich.settings import VerifySettings
from kgenrich.verification.kge import (
    KGEModel,
    LabeledTriple,
    _BatchedLCWATrainingLoop,
    train_verifier,
)
from kgenrich.verification.scorers import StackedScorer, fit_scorer, split_holdout


def _graph(n: int, *, offset: int = 0) -> list[LabeledTriple]:
    out: list[LabeledTriple] = []
    for i in range(offset, offset + n):
        out.append((f"movie{i}", "director", f"person{i % 6}"))
        out.append((f"movie{i}", "genre", f"genre{i % 4}"))
    return out


def _rows(kge: KGEModel, labels: list[str], *, kind: str = "entity") -> torch.Tensor:
    ids = kge.factory.entity_to_id if kind == "entity" else kge.factory.relation_to_id
    reps = (kge.model.entity_representations if kind == "entity"
            else kge.model.relation_representations)
    index = torch.tensor([ids[label] for label in labels])
    if kind == "relation" and kge.model.use_inverse_triples:
        batch = torch.zeros((len(index), 3), dtype=torch.long)
        batch[:, 1] = index
        index = kge.model.relation_inverter.map(batch=batch, index=1, invert=False)[:, 1]
    return reps[0]._embeddings.weight.data[index].clone()


@pytest.mark.parametrize("model", ["ComplEx", "TransE"])
def test_warm_start_copies_known_rows_by_label_and_adds_fresh_ones(model: str) -> None:
    old = train_verifier(_graph(20), model=model, dim=8, epochs=2, seed=1, batch_size=16)
    # new movies shift every id: a copy by id instead of by label would put rows elsewhere
    new_graph = _graph(4, offset=100) + _graph(20)
    warm = train_verifier(new_graph, model=model, dim=8, epochs=1, seed=2, batch_size=16,
                          init=old, learning_rate=0.0)  # lr 0: the rows stay as copied
    shared = [f"movie{i}" for i in range(20)] + ["person0", "genre3"]
    assert any(warm.factory.entity_to_id[e] != old.factory.entity_to_id[e] for e in shared)
    torch.testing.assert_close(_rows(warm, shared), _rows(old, shared))
    torch.testing.assert_close(_rows(warm, ["director", "genre"], kind="relation"),
                               _rows(old, ["director", "genre"], kind="relation"))
    assert warm.report.warm_entities == len(old.factory.entity_to_id)
    assert warm.report.warm_relations == 2
    assert train_verifier(new_graph, model=model, dim=8, epochs=1, seed=2,
                          batch_size=16).report.warm_entities == 0


def test_a_warm_start_trains_on_from_the_copied_rows() -> None:
    old = train_verifier(_graph(20), model="ComplEx", dim=8, epochs=3, seed=1, batch_size=16)
    warm = train_verifier(_graph(20) + _graph(2, offset=50), model="ComplEx", dim=8, epochs=1,
                          seed=1, batch_size=16, init=old)
    assert not torch.equal(_rows(warm, ["movie0"]), _rows(old, ["movie0"]))  # it did train
    assert warm.report.epochs_run == 1


def test_a_warm_start_refuses_another_model_shape() -> None:
    old = train_verifier(_graph(10), model="ComplEx", dim=8, epochs=1, seed=1)
    with pytest.raises(ValueError, match="must match"):
        train_verifier(_graph(10), model="ComplEx", dim=16, epochs=1, seed=1, init=old)
    with pytest.raises(ValueError, match="must match"):
        train_verifier(_graph(10), model="TransE", dim=8, epochs=1, seed=1, init=old)


def test_the_holdout_never_takes_a_triple_the_old_model_trained_on() -> None:
    keys = _graph(60)
    seen = frozenset(keys[: len(keys) // 2])
    train, held = split_holdout(keys, fraction=0.2, seed=0, seen=seen)
    assert held and not set(held) & seen
    assert sorted(train + held) == sorted(keys)


def test_a_warm_fit_scorer_trains_warm_epochs_and_holds_out_unseen_triples() -> None:
    settings = VerifySettings(model="ComplEx", dim=8, epochs=7, warm_epochs=2,
                              kge_scorer="calibrated")
    first = fit_scorer("calibrated", _graph(60), settings=settings, labels={})
    keys = _graph(60) + _graph(3, offset=200)
    warm = fit_scorer("calibrated", keys, settings=settings, labels={}, previous=first)
    assert first.metrics["warm start"] == 0.0 and warm.metrics["warm start"] == 1.0
    assert warm.metrics["epochs run"] == 2.0 and first.metrics["epochs run"] <= 7.0
    seen = first.kge.training_triples()  # type: ignore[attr-defined]
    held = set(keys) - warm.kge.training_triples()  # type: ignore[attr-defined]
    assert held and not held & seen


def test_the_batched_lcwa_loader_gives_pykeens_batches_in_pykeens_order() -> None:
    factory = TriplesFactory.from_labeled_triples(np.asarray(_graph(30), dtype=str),
                                                  create_inverse_triples=True)
    kge = train_verifier(_graph(30), model="ComplEx", dim=4, epochs=1, seed=0).model

    def batches(loop_class: type) -> list[dict[str, torch.Tensor]]:
        loop = loop_class(model=kge, triples_factory=factory, optimizer="Adam",
                          automatic_memory_optimization=False)
        torch.manual_seed(5)
        loader = loop._create_training_data_loader(factory, sampler=None, batch_size=7,
                                                   drop_last=False, shuffle=True)
        return list(loader)

    ours, theirs = batches(_BatchedLCWATrainingLoop), batches(LCWATrainingLoop)
    assert len(ours) == len(theirs) > 3
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a["pairs"], b["pairs"])
        assert a["target"].dtype == b["target"].dtype and torch.equal(a["target"], b["target"])


def test_a_warm_stacked_fit_keeps_the_previous_c_instead_of_searching_the_grid() -> None:
    settings = VerifySettings(model="ComplEx", dim=8, epochs=3, warm_epochs=1,
                              kge_scorer="stacked")
    keys = _graph(120)
    first = fit_scorer("stacked", keys, settings=settings, labels={})
    assert isinstance(first, StackedScorer) and len(first.stacker.selection) > 1
    warm = fit_scorer("stacked", keys + _graph(2, offset=300), settings=settings, labels={},
                      previous=first)
    assert isinstance(warm, StackedScorer)
    assert list(warm.stacker.selection) == [first.stacker.c]


def test_the_training_setting_reaches_the_training_loop() -> None:
    settings = VerifySettings(model="ComplEx", dim=8, epochs=2, kge_scorer="calibrated",
                              training="slcwa", negatives=3)
    scorer = fit_scorer("calibrated", _graph(40), settings=settings, labels={})
    config = scorer.kge.config  # type: ignore[attr-defined]
    assert (config.training, config.negatives_per_positive) == ("slcwa", 3)
    # sLCWA keeps the model's own loss (LCWA's default is cross-entropy) and, with dense
    # Adam updates of every row per step, takes bigger batches than LCWA on a big graph
    assert config.loss is None and config.batch_size == 256


def test_early_stopping_ranks_at_most_valid_max_triples_and_the_same_ones_each_time() -> None:
    train, valid = _graph(80), _graph(30, offset=0)[::2]
    runs = [train_verifier(train, valid=valid, model="ComplEx", dim=8, epochs=2, seed=3,
                           eval_every=1, valid_max=7) for _ in range(2)]
    assert [r.report.n_valid_used for r in runs] == [7, 7]
    assert runs[0].report.valid_mrr_history == runs[1].report.valid_mrr_history
    full = train_verifier(train, valid=valid, model="ComplEx", dim=8, epochs=2, seed=3,
                          eval_every=1)
    assert full.report.n_valid_used == len(valid) == 30
