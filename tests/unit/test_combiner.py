"""Verification with a chosen combiner: the learned model, catalog agreement and new-entity
features, the text fallback for KGE-unseen triples, and the refit on review verdicts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from kgenrich.kg.records import Decision, Ontology, Provenance, Relation, SourceKind, Triple
from kgenrich.kg.review import ReviewRow
from kgenrich.pipeline.review import review_queue
from kgenrich.pipeline.verify import Context, verify_context, verify_triples
from kgenrich.verification.combiner import (
    Combiner,
    choose_combiner,
    refit_from_review,
    review_examples,
)
from kgenrich.verification.confidence import (
    DEFAULT_THRESHOLD,
    ConfidenceFeatures,
    ConfidenceModel,
)
from kgenrich.verification.scorers import FunctionScorer

ONT = Ontology(
    item_type="Movie",
    types=("Movie", "Person", "Genre"),
    closed_types=("Genre",),
    relations=(
        Relation(name="directed_by", domain="Movie", range="Person", functional=True),
        Relation(name="has_genre", domain="Movie", range="Genre"),
    ),
)
TYPES = {"item/1": "Movie", "item/2": "Movie", "person/a": "Person", "person/new": "Person",
         "genre/horror": "Genre", "genre/drama": "Genre"}
KNOWN = {"item/1", "item/2", "person/a", "genre/horror", "genre/drama"}


def _cand(head: str, rel: str, tail: str, *, agreement: float = 1.0, samples: int = 3) -> Triple:
    return Triple(head=head, relation=rel, tail=tail,
                  provenance=Provenance(source=SourceKind.COMPLETED, item_id=head.split("/")[1],
                                        scores={"agreement": agreement, "samples": samples}))


def _catalog(head: str, rel: str, tail: str) -> Triple:
    return Triple(head=head, relation=rel, tail=tail,
                  provenance=Provenance(source=SourceKind.CATALOG, item_id=head.split("/")[1],
                                        decision=Decision.TRUSTED))


def _verify(cands: Sequence[Triple], *, combiner: Combiner | None = None,
            context: Context | None = None) -> dict[tuple[str, str, str], Triple]:
    scorer = FunctionScorer(
        name="test", knows_fn=lambda h, r, t: h in KNOWN and t in KNOWN,
        kge_fn=lambda ts: np.zeros(len(ts)),  # KGE says 0.5 for everything it knows
        probability_fn=lambda keys: 1 / (1 + np.exp(-np.zeros(len(keys)))))
    res = verify_triples(
        cands, ontology=ONT, entity_types=TYPES, scorer=scorer,
        combiner=combiner or Combiner.rule((0.4, 0.6)), context=context)
    assert len(res.kept) == len(cands)  # nothing dropped
    return {t.key: t for t in res.kept}


def test_context_from_base_graph() -> None:
    ctx = verify_context([_catalog("item/1", "has_genre", "genre/drama")])
    assert ctx.catalog_tails == {("item/1", "has_genre"): frozenset({"genre/drama"})}
    assert ctx.known_entities == {"item/1", "genre/drama"}


def test_learned_combiner_reads_catalog_agreement() -> None:
    """The shipped model weighs the catalog's own attribute: a genre the catalog lists beats
    one it does not, with the same KGE probability and agreement."""
    comb = choose_combiner("learned", review_band=(0.4, 0.6), model=None, accept_at=None,
                           target_precision=0.9)
    assert comb.accept_at == DEFAULT_THRESHOLD and comb.name == "learned"
    ctx = verify_context([_catalog("item/1", "has_genre", "genre/drama"),
                          _catalog("item/2", "has_genre", "genre/horror")])
    out = _verify([_cand("item/1", "has_genre", "genre/drama"),
                   _cand("item/1", "has_genre", "genre/horror")], combiner=comb, context=ctx)
    agrees = out[("item/1", "has_genre", "genre/drama")].provenance
    disagrees = out[("item/1", "has_genre", "genre/horror")].provenance
    assert agrees.scores["confidence"] > disagrees.scores["confidence"]
    assert "(learned)" in agrees.reason


def test_rule_combiner_is_the_default_and_unchanged() -> None:
    out = _verify([_cand("item/1", "directed_by", "person/a", agreement=1.0)])
    prov = out[("item/1", "directed_by", "person/a")].provenance
    assert prov.scores["confidence"] == pytest.approx(0.5)  # 0.5 x 1.0
    assert prov.decision is Decision.REVIEW and "(rule)" in prov.reason


def test_unseen_entity_goes_to_the_fallback_and_never_auto_accepts() -> None:
    asked: list[tuple[str, str, str]] = []

    def fallback(keys: Sequence[tuple[str, str, str]]) -> np.ndarray:
        asked.extend(keys)
        return np.array([0.99 for _ in keys])

    lenient = Combiner(model=None, accept_at=0.05, review_from=0.01, name="rule")
    out = _verify([_cand("item/1", "directed_by", "person/new"),
                   _cand("item/1", "directed_by", "person/a")],
                  combiner=lenient, context=Context(fallback=fallback))
    assert asked == [("item/1", "directed_by", "person/new")]  # only the KGE-unseen one
    new = out[("item/1", "directed_by", "person/new")].provenance
    assert new.scores["fallback_probability"] == pytest.approx(0.99)
    assert "kge_probability" not in new.scores
    assert new.decision is Decision.REVIEW  # above the accept bar, still not auto-accepted
    assert out[("item/1", "directed_by", "person/a")].provenance.decision is Decision.ACCEPTED


def test_fallback_nan_means_no_score_not_zero() -> None:
    out = _verify([_cand("item/1", "directed_by", "person/new")],
                  context=Context(fallback=lambda keys: np.full(len(keys), np.nan)))
    prov = out[("item/1", "directed_by", "person/new")].provenance
    assert "fallback_probability" not in prov.scores
    assert prov.decision is Decision.REVIEW  # the rule's unseen cap: 0.5 x agreement 1.0


def test_new_entity_flag_changes_a_model_that_weighs_it() -> None:
    model = ConfidenceModel(weights={"new_entity": -3.0}, intercept=0.0)
    comb = Combiner(model=model, accept_at=0.4, review_from=0.1, name="learned:test")
    out = _verify([_cand("item/1", "directed_by", "person/new")], combiner=comb,
                  context=Context(known_entities=frozenset(KNOWN)))
    assert out[("item/1", "directed_by", "person/new")].provenance.scores["confidence"] \
        == pytest.approx(1 / (1 + np.exp(3.0)))


def _labelled(n: int) -> tuple[list[ConfidenceFeatures], list[int]]:
    rng = np.random.default_rng(0)
    feats, labels = [], []
    for i in range(n):
        true = i % 3 == 0
        p = float(np.clip(rng.normal(0.8 if true else 0.3, 0.1), 0.01, 0.99))
        feats.append(ConfidenceFeatures(relation="directed_by", kge_probability=p,
                                        agreement=1.0, samples=1))
        labels.append(int(true))
    return feats, labels


def test_refit_needs_enough_verdicts_of_both_kinds() -> None:
    base = choose_combiner("rule", review_band=(0.4, 0.6), model=None, accept_at=None,
                           target_precision=0.9)
    feats, labels = _labelled(10)
    same, note = refit_from_review(base, feats, labels, min_labels=30, target_precision=0.9)
    assert same is base and "needs 30" in note
    feats, labels = _labelled(40)
    refit, note = refit_from_review(base, feats, labels, min_labels=30, target_precision=0.9)
    assert refit is not base and refit.name == "learned:review"
    assert refit.model is not None and refit.model.weights["kge_logit"] > 0
    assert "refit on 40 reviewed verdicts" in note
    p = refit.model.predict(feats)
    accepted = p >= refit.accept_at
    assert accepted.any() and np.mean(np.array(labels)[accepted]) >= 0.9


def test_review_examples_match_verdicts_to_verified_triples() -> None:
    verified = list(_verify([_cand("item/1", "directed_by", "person/a"),
                             _cand("item/2", "directed_by", "person/a")]).values())
    rows = [ReviewRow(head="item/1", relation="directed_by", tail="person/a", verdict="accept"),
            ReviewRow(head="item/2", relation="directed_by", tail="person/a", verdict=""),
            ReviewRow(head="item/9", relation="directed_by", tail="person/a", verdict="reject")]
    feats, labels = review_examples(verified, rows)
    assert labels == [1] and feats[0].kge_probability == pytest.approx(0.5)


def test_review_file_keeps_rows_that_already_have_a_verdict() -> None:
    """The review file is also the record of verdicts: a triple taken out of review by its
    verdict keeps its row, so the next run applies the verdict again."""
    accepted = _cand("item/1", "directed_by", "person/a").with_provenance(
        decision=Decision.ACCEPTED, reason="accepted in review")
    pending = _cand("item/2", "directed_by", "person/a").with_provenance(
        decision=Decision.REVIEW, reason="band")
    other = _cand("item/2", "has_genre", "genre/drama").with_provenance(
        decision=Decision.ACCEPTED, reason="high")
    prev = {accepted.key: ReviewRow(head="item/1", relation="directed_by", tail="person/a",
                                    verdict="accept", reviewer="ann")}
    rows = review_queue([accepted, pending, other], labels={}, previous=prev)
    assert [(r.key, r.verdict) for r in rows] == [(accepted.key, "accept"), (pending.key, "")]


def test_unknown_combiner_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown combiner"):
        choose_combiner("magic", review_band=(0.4, 0.6), model=None, accept_at=None,
                        target_precision=0.9)
