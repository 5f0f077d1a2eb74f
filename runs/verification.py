"""The run's verification step: the scorer fitted on the trusted base graph, then every
candidate verified, review verdicts applied and the combiner refitted on them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

from kgenrich.kg.records import Triple
from kgenrich.kg.review import ReviewRow
from kgenrich.pipeline import assemble
from kgenrich.pipeline.verify import (
    ProbabilityFn,
    ReviewedVerification,
    verify_context,
    verify_with_review,
)
from kgenrich.runs.graph import BaseGraph
from kgenrich.runs.probes import Calibration, ProbeRun, calibrate, masked_keys
from kgenrich.settings import VerifySettings
from kgenrich.verification.cache import cached_fit
from kgenrich.verification.combiner import Combiner, choose_combiner
from kgenrich.verification.confidence import ConfidenceModel
from kgenrich.verification.scorers import Scorer, fit_scorer

Key = tuple[str, str, str]


def fit_run_scorer(graph: BaseGraph, *, settings: VerifySettings,
                   cache_dir: Path | None, exclude: Sequence[Key] = ()) -> Scorer:
    """The ``verify.kge_scorer`` scorer fitted on the base graph's trusted triples but
    ``exclude`` (the calibration probes' answers); with ``cache_dir`` (and ``verify.cache``) the
    previous run's fit when nothing it reads changed, or a warm start from it when little did."""
    keys = _trusted_keys(graph, exclude)

    def fit(previous: Scorer | None = None) -> Scorer:
        return fit_scorer(settings.kge_scorer, keys, settings=settings, labels=graph.labels(),
                          previous=previous)

    if cache_dir is None or not settings.cache:
        return fit()
    return cached_fit(cache_dir, keys, settings=settings, fit=fit)


def base_combiner(settings: VerifySettings,
                  confidence_model: ConfidenceModel | None) -> Combiner:
    """The combiner ``verify.combiner`` names, before any calibration or review refit."""
    v = settings
    return choose_combiner(v.combiner, review_band=v.review_band, accept_at=v.accept_at,
                           target_precision=v.target_precision, model=confidence_model)


def calibrate_run(
    graph: BaseGraph, probes: ProbeRun | None, *, scorer: Scorer, settings: VerifySettings,
    confidence_model: ConfidenceModel | None,
) -> Calibration | None:
    """Per-relation thresholds from the asked probes (None without probes)."""
    if probes is None:
        return None
    fallback = (lambda: _fallback(graph, settings, masked_keys(probes))) \
        if settings.text_fallback else None
    return calibrate(probes, graph=graph, scorer=scorer, fallback=fallback, settings=settings,
                     combiner=base_combiner(settings, confidence_model))


def verify_candidates(
    graph: BaseGraph, candidates: Sequence[Triple], *, scorer: Scorer,
    settings: VerifySettings, reviewed: Sequence[ReviewRow],
    confidence_model: ConfidenceModel | None, calibration: Calibration | None = None,
) -> ReviewedVerification:
    """Verify every candidate (the text fallback scores those the KGE never saw) with the
    combiner the calibration probes set thresholds for (when there are probes), refit it on the
    review file's verdicts if it has enough, and apply the verdicts."""
    start = time.perf_counter()
    v = settings
    context = verify_context(graph.base)
    if v.text_fallback and any(not scorer.knows(*t.key) for t in candidates):
        fallback = (calibration.fallback if calibration and calibration.fallback
                    else _fallback(graph, v, masked_keys(calibration.probes if calibration
                                                         else None)))
        context = dataclasses.replace(context, fallback=fallback)
    combiner = calibration.combiner if calibration else base_combiner(v, confidence_model)
    verified = verify_with_review(
        candidates, ontology=graph.ontology, entity_types=graph.entity_types(), scorer=scorer,
        combiner=combiner, context=context, reviewed=reviewed,
        refit_min_labels=v.refit_min_labels, target_precision=v.target_precision)
    # the stage's seconds cover the text fallback's fit and a review refit's second pass too
    stats = verified.stage.stats.model_copy(update={"seconds": time.perf_counter() - start})
    note = verified.combiner_note + (f"; calibration probes: {calibration.note}"
                                     if calibration else "")
    return dataclasses.replace(verified, stage=verified.stage.model_copy(update={"stats": stats}),
                               combiner_note=note)


def _fallback(graph: BaseGraph, settings: VerifySettings,
              exclude: Sequence[Key]) -> ProbabilityFn:
    return fit_scorer("text", _trusted_keys(graph, exclude), settings=settings,
                      labels=graph.labels()).probability


def _trusted_keys(graph: BaseGraph, exclude: Sequence[Key] = ()) -> list[Key]:
    drop = set(exclude)
    return [t.key for t in assemble.trusted(graph.base) if t.key not in drop]
