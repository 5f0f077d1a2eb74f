"""The run's verification step: the verifier fitted on the trusted base graph, then every
candidate verified, review verdicts applied and the combiner refitted on them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kgenrich.kg.records import StageResult, Triple
from kgenrich.pipeline import assemble
from kgenrich.pipeline.combiner import base_combiner, refit_from_review, review_examples
from kgenrich.pipeline.confidence import ConfidenceModel
from kgenrich.pipeline.review import ReviewRow, apply_review
from kgenrich.pipeline.verify import (
    Combiner,
    FittedVerifier,
    fit_verifier,
    text_fallback,
    verify_context,
    verify_triples,
)
from kgenrich.runs.graph import BaseGraph

from kgenrich.settings import VerifySettings


def fit_run_verifier(graph: BaseGraph, *, settings: VerifySettings) -> FittedVerifier:
    """The KGE verifier trained on the base graph's trusted triples."""
    v = settings
    return fit_verifier(assemble.trusted(graph.base), model=v.model, dim=v.dim, epochs=v.epochs,
                        seed=v.seed, holdout=v.holdout, scorer=v.kge_scorer)


@dataclass
class Verified:
    """Verification's result, the candidates after review verdicts, and what the report says."""

    result: StageResult[Triple]
    triples: list[Triple]  # verified candidates with the review verdicts applied
    combiner_note: str
    review_counts: dict[str, Any]


def verify_candidates(
    graph: BaseGraph, candidates: Sequence[Triple], *, verifier: FittedVerifier,
    settings: VerifySettings, reviewed: Sequence[ReviewRow],
    confidence_model: ConfidenceModel | None,
) -> Verified:
    """Verify, refit the combiner on the review file's verdicts (if it has enough) and verify
    again with it, then apply the verdicts."""
    v = settings
    context = verify_context(graph.base)
    if v.text_fallback and any(not verifier.knows(*t.key) for t in candidates):
        context = dataclasses.replace(context, fallback=text_fallback(
            assemble.trusted(graph.base), labels=graph.labels(), seed=v.seed))
    combiner = base_combiner(v.combiner, review_band=v.review_band, accept_at=v.accept_at,
                             target_precision=v.target_precision, model=confidence_model)
    entity_types = graph.entity_types()

    def run(comb: Combiner) -> StageResult[Triple]:
        return verify_triples(
            candidates, ontology=graph.ontology, entity_types=entity_types, knows=verifier.knows,
            score=verifier.score, probability=verifier.probability, review_band=v.review_band,
            verifier_name=verifier.name, combiner=comb, context=context)

    result = run(combiner)
    note = f"{combiner.name}, accept at {combiner.accept_at:.3f}"
    if any(r.verdict for r in reviewed):
        feats, labels = review_examples(result.kept, reviewed)
        refit, note = refit_from_review(combiner, feats, labels, min_labels=v.refit_min_labels,
                                        target_precision=v.target_precision)
        if refit is not combiner:
            result = run(refit)
    triples, counts = apply_review(result.kept, rows=reviewed)
    return Verified(result=result, triples=list(triples), combiner_note=note,
                    review_counts=dict(counts))
