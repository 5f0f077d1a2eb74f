"""KGE verifier on a tiny synthetic graph: save/load, unknown labels, link-prediction metrics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from kgenrich.verification.kge import KGEModel, LabeledTriple, UnknownLabelError, train_verifier


def _tiny_graph() -> list[LabeledTriple]:
    # 24 movies, each with one director (of 6) and one genre (of 4): 48 triples, 34 entities
    triples: list[LabeledTriple] = []
    for i in range(24):
        triples.append((f"movie{i}", "director", f"person{i % 6}"))
        triples.append((f"movie{i}", "genre", f"genre{i % 4}"))
    return triples


def _split() -> tuple[list[LabeledTriple], list[LabeledTriple]]:
    """Hold out the genres of movies 20-23 (every label stays known through other triples)."""
    held = {(f"movie{i}", "genre", f"genre{i % 4}") for i in range(20, 24)}
    graph = _tiny_graph()
    return [t for t in graph if t not in held], [t for t in graph if t in held]


@pytest.fixture(scope="module")
def verifier() -> KGEModel:
    train, valid = _split()
    return train_verifier(
        train,
        valid=[*valid, ("movie_unknown", "genre", "genre0")],
        model="ComplEx",
        dim=8,
        epochs=2,
        eval_every=1,
        batch_size=16,
        dropout=0.1,
        seed=1,
    )


def test_training_report(verifier: KGEModel) -> None:
    report = verifier.report
    assert report.n_train == 44
    assert report.n_valid_skipped_unknown == 1
    assert report.n_valid_used == 4
    assert report.epochs_run == 2
    assert len(report.valid_mrr_history) == 2
    assert verifier.config.loss == "crossentropy"


def test_saved_verifier_reloads_and_scores_identically(verifier: KGEModel, tmp_path: Path) -> None:
    probe = _tiny_graph()[:10] + [("movie0", "director", "person3"), ("movie5", "genre", "genre1")]
    before = verifier.score(probe)

    verifier.save(tmp_path / "kge")
    loaded = KGEModel.load(tmp_path / "kge")

    np.testing.assert_array_equal(loaded.score(probe), before)
    assert loaded.config == verifier.config
    assert loaded.report == verifier.report
    assert loaded.factory.entity_to_id == verifier.factory.entity_to_id
    assert loaded.factory.relation_to_id == verifier.factory.relation_to_id


def test_scores_are_deterministic_in_eval_mode(verifier: KGEModel) -> None:
    # dropout was on during training; scoring must not apply it
    probe = _tiny_graph()[:6]
    np.testing.assert_array_equal(verifier.score(probe), verifier.score(probe))


def test_unknown_labels_are_not_known_and_score_nan(verifier: KGEModel) -> None:
    assert verifier.knows("movie0", "director", "person0")
    assert not verifier.knows("movie_new", "director", "person0")
    assert not verifier.knows("movie0", "director", "person_new")
    assert not verifier.knows("movie0", "composer", "person0")

    scores = verifier.score(
        [
            ("movie0", "director", "person0"),
            ("movie_new", "director", "person0"),
            ("movie0", "composer", "person0"),
        ]
    )
    assert math.isfinite(scores[0])
    assert math.isnan(scores[1]) and math.isnan(scores[2])
    assert np.isnan(verifier.score([("x", "y", "z")])).all()
    assert verifier.score([]).shape == (0,)

    with pytest.raises(UnknownLabelError, match="movie_new"):
        verifier.map_triples([("movie_new", "director", "person0")])


def test_link_prediction_metrics(verifier: KGEModel) -> None:
    _train, valid = _split()
    result = verifier.evaluate_link_prediction([*valid, ("movie_new", "genre", "genre0")])
    assert result.n_evaluated == 4
    assert result.n_skipped_unknown == 1
    assert 0.0 < result.mrr <= 1.0
    assert 0.0 <= result.hits_at_1 <= result.hits_at_3 <= result.hits_at_10 <= 1.0


def test_training_without_validation_runs_all_epochs() -> None:
    model = train_verifier(_tiny_graph(), model="TransE", training="slcwa", dim=4, epochs=2,
                           seed=0)
    assert model.report.epochs_run == 2
    assert model.report.best_epoch is None
    assert model.config.loss is None  # sLCWA keeps the model's own default loss
    assert np.isfinite(model.score(_tiny_graph()[:3])).all()


def test_training_needs_triples() -> None:
    with pytest.raises(ValueError, match="at least one"):
        train_verifier([], model="ComplEx", dim=4, epochs=1, seed=0)


def test_scores_use_the_models_internal_relation_ids(verifier: KGEModel) -> None:
    # with inverse triples PyKEEN stores forward relation r as 2r: the score must match PyKEEN's
    # own 1-N predictions, which do that translation, for both directions
    triples = _tiny_graph()[:5]
    ids = verifier.map_triples(triples)
    with torch.inference_mode():
        tails = verifier.model.predict_t(ids[:, :2])[torch.arange(5), ids[:, 2]]
        heads = verifier.model.predict_h(ids[:, 1:])[torch.arange(5), ids[:, 0]]
    expected = ((tails + heads) / 2.0).double().numpy()
    # float32 scores from two code paths: their rounding differs with the CPU's vector width,
    # so the tolerance is a few float32 ulps of the scores' scale (a wrong relation id is off
    # by the scale itself)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(verifier.score(triples), expected, rtol=1e-5, atol=1e-5 * scale)


def test_log_likelihood_is_a_log_probability(verifier: KGEModel) -> None:
    ll = verifier.log_likelihood([*_tiny_graph()[:4], ("nobody", "genre", "genre0")])
    assert np.all(ll[:4] <= 0.0)
    assert math.isnan(ll[4])


def test_ranks_are_between_one_and_the_number_of_entities(verifier: KGEModel) -> None:
    triples = [*_tiny_graph()[:6], ("movie_unknown", "genre", "genre0")]
    n_entities = verifier.factory.num_entities
    for side in ("tail", "head"):
        ranks = verifier.ranks(triples, side=side)  # type: ignore[arg-type]
        assert math.isnan(ranks[-1])
        assert ((ranks[:-1] >= 1) & (ranks[:-1] <= n_entities)).all()


def test_verifier_pickled_under_the_old_module_name_still_loads() -> None:
    """Verifiers saved before the one-name install pickled `kg.kge._Dropout`."""
    import io
    import pickle

    from kgenrich.verification import kge

    data = pickle.dumps(kge._Dropout(0.25), protocol=2)
    old = data.replace(b"kgenrich.verification.kge", b"kg.kge")
    assert old != data
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(old)
    loaded = kge._PICKLE.Unpickler(io.BytesIO(old)).load()
    assert isinstance(loaded, kge._Dropout) and loaded.p == 0.25
