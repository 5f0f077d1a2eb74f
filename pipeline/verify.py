"""Verification: every candidate triple gets a schema check, a probability from the scorer (or an
explicit `unverified_new_entity` status when the scorer cannot score it) and one confidence from
the combiner; the confidence decides accept / review / reject.

The stage returns every candidate, annotated, in `kept` (nothing is dropped: rejected triples
are exported with their decision), and one `Rejection` per rejected triple for the report.
`verify_with_review` adds the review queue's verdicts: a combiner refit on them, then the
verdicts themselves.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field

import numpy as np

from kgenrich.kg.records import (
    Decision,
    Ontology,
    Rejection,
    SourceKind,
    StageResult,
    StageStats,
    Triple,
)
from kgenrich.kg.review import ReviewRow
from kgenrich.pipeline.review import apply_review
from kgenrich.verification.combiner import Combiner, refit_from_review, review_examples
from kgenrich.verification.confidence import ConfidenceFeatures, features_from_triple
from kgenrich.verification.scorers import Scorer

logger = logging.getLogger(__name__)

STAGE = "verify"

#: P(true) per triple key, NaN where it cannot say (e.g. ``Scorer.probability``).
ProbabilityFn = Callable[[Sequence[tuple[str, str, str]]], np.ndarray]


def type_problem(
    triple: Triple, *, ontology: Ontology, entity_types: Mapping[str, str]
) -> str | None:
    """Why the triple breaks the schema, or None."""
    rel = ontology.relation(triple.relation)
    if rel is None:
        return "relation not in ontology"
    head_type = entity_types.get(triple.head)
    tail_type = entity_types.get(triple.tail)
    if head_type != rel.domain:
        return f"head type {head_type} is not {rel.domain}"
    if tail_type != rel.range:
        return f"tail type {tail_type} is not {rel.range}"
    return None


@dataclass(frozen=True)
class Context:
    """What verification knows beyond the triple itself (all optional)."""

    #: (head, relation) -> the tails the catalog itself gives for that relation
    catalog_tails: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    #: entities in the graph before this run (seed + catalog); None: unknown, no new-entity flag
    known_entities: Set[str] | None = None
    #: text-fallback P(true) per triple key (NaN when it cannot say), for KGE-unseen triples
    fallback: ProbabilityFn | None = None


def _features(
    t: Triple, *, kge_p: float | None, fallback_p: float | None, context: Context
) -> ConfidenceFeatures:
    tails = context.catalog_tails.get((t.head, t.relation))
    return features_from_triple(
        t,
        kge_probability=kge_p,
        fallback_probability=fallback_p,
        catalog_agrees=None if tails is None else t.tail in tails,
        new_entity=(context.known_entities is not None and t.tail not in context.known_entities),
    )


def verify_triples(
    candidates: Sequence[Triple],
    *,
    ontology: Ontology,
    entity_types: Mapping[str, str],
    scorer: Scorer,
    combiner: Combiner,
    context: Context | None = None,
) -> StageResult[Triple]:
    """Annotate each candidate with scores and a decision (see module docstring).

    ``context`` adds catalog agreement, the new-entity flag and the text fallback for triples
    the scorer does not know.
    """
    start = time.perf_counter()
    ctx = context or Context()
    low = combiner.review_from
    schema_ok: list[Triple] = []
    out: list[Triple] = []
    rejected: list[Rejection] = []
    for t in candidates:
        problem = type_problem(t, ontology=ontology, entity_types=entity_types)
        if problem is None:
            schema_ok.append(t)
            continue
        out.append(t.with_provenance(decision=Decision.REJECTED, reason=problem,
                                     accepted_by=scorer.name))
        rejected.append(Rejection(stage=STAGE, reason="schema: " + problem.split(" is ")[0],
                                  item_id=t.provenance.item_id, detail=f"{t.key}"))
    known = [t for t in schema_ok if scorer.knows(*t.key)]
    probs: dict[tuple[str, str, str], float] = {}
    raws: dict[tuple[str, str, str], float] = {}
    if known:
        scored = scorer.scores([t.key for t in known])
        probs = {t.key: float(x) for t, x in zip(known, scored.probability, strict=True)}
        if scored.kge is not None:
            raws = {t.key: float(x) for t, x in zip(known, scored.kge, strict=True)}
    unseen = [t for t in schema_ok if t.key not in probs]
    fallback: dict[tuple[str, str, str], float] = {}
    if unseen and ctx.fallback is not None:
        fb = ctx.fallback([t.key for t in unseen])
        fallback = {t.key: float(x) for t, x in zip(unseen, fb, strict=True) if math.isfinite(x)}
    rows = [
        (_features(t, kge_p=probs.get(t.key), fallback_p=fallback.get(t.key), context=ctx),
         t.provenance.source is SourceKind.EXTRACTED and bool(t.provenance.evidence))
        for t in schema_ok
    ]
    for t, (feats, _), conf in zip(schema_ok, rows, combiner.confidences(rows), strict=True):
        prov = t.provenance
        kge_p = probs.get(t.key)
        fb_p = fallback.get(t.key)
        scores = dict(prov.scores) | {"confidence": conf}
        signal, value, high = combiner.gate(feats, conf)
        cal = combiner.probe_calibration(feats)
        if cal is not None and math.isfinite(p_right := cal.probability(value)):
            # P(correct) at this signal's value as the probes measured it: the figure to filter on
            scores |= {"probe_probability": p_right}
        if kge_p is not None:
            if t.key in raws:
                scores |= {"kge": raws[t.key]}
            scores |= {"kge_probability": kge_p}
        if fb_p is not None:
            scores |= {"fallback_probability": fb_p}
        if kge_p is None:
            decision, reason = Decision.UNVERIFIED_NEW_ENTITY, "KGE never saw an entity"
            if conf >= low:
                decision, reason = Decision.REVIEW, "unseen entity; confidence in review band"
        elif value >= high:
            decision, reason = Decision.ACCEPTED, f"{signal} {value:.2f} >= {high:.2f}"
        elif conf >= low:
            decision, reason = Decision.REVIEW, f"confidence {conf:.2f} in review band"
        else:
            decision, reason = Decision.REJECTED, f"confidence {conf:.2f} < {low:.2f}"
            rejected.append(Rejection(stage=STAGE, reason="low confidence",
                                      item_id=prov.item_id, detail=f"{t.key}"))
        out.append(t.with_provenance(scores=scores, decision=decision,
                                     reason=f"{reason} ({combiner.name})",
                                     accepted_by=scorer.name))
    return StageResult(kept=tuple(out), rejected=tuple(rejected),
                       stats=StageStats(seconds=time.perf_counter() - start))


def verify_context(base: Sequence[Triple]) -> Context:
    """Catalog tails per (head, relation) and the entities known before this run's candidates."""
    tails: dict[tuple[str, str], set[str]] = {}
    known: set[str] = set()
    for t in base:
        known.update((t.head, t.tail))
        if t.provenance.source is SourceKind.CATALOG:
            tails.setdefault((t.head, t.relation), set()).add(t.tail)
    return Context(catalog_tails={k: frozenset(v) for k, v in tails.items()},
                   known_entities=frozenset(known))


@dataclass(frozen=True)
class ReviewedVerification:
    """Verification with the review queue's verdicts taken into account."""

    #: the verify stage as run with the final combiner (before verdicts are applied)
    stage: StageResult[Triple]
    #: ``stage.kept`` with every verdict applied (a verdict outranks the verifier)
    triples: tuple[Triple, ...]
    #: "accepted by review" / "rejected by review" counts
    review_counts: Mapping[str, int]
    #: the combiner the stage ran with
    combiner: Combiner
    #: one line for the run report: which combiner, and whether it was refit on verdicts
    combiner_note: str


def verify_with_review(
    candidates: Sequence[Triple],
    *,
    ontology: Ontology,
    entity_types: Mapping[str, str],
    scorer: Scorer,
    combiner: Combiner,
    context: Context | None,
    reviewed: Sequence[ReviewRow],
    refit_min_labels: int,
    target_precision: float,
) -> ReviewedVerification:
    """Verify, refit the combiner on the verdicts in ``reviewed`` when there are at least
    ``refit_min_labels`` of both kinds (then verify again with it), and apply the verdicts."""

    def run(comb: Combiner) -> StageResult[Triple]:
        return verify_triples(candidates, ontology=ontology, entity_types=entity_types,
                              scorer=scorer, combiner=comb, context=context)

    stage = run(combiner)
    used = combiner
    note = f"{combiner.name}, accept at {combiner.accept_at:.3f}"
    if any(r.verdict for r in reviewed):
        feats, labels = review_examples(stage.kept, reviewed)
        refit, note = refit_from_review(combiner, feats, labels, min_labels=refit_min_labels,
                                        target_precision=target_precision)
        if refit is not combiner:
            stage = run(refit)
            used = refit
    verified, counts = apply_review(stage.kept, rows=reviewed)
    return ReviewedVerification(stage=stage, triples=tuple(verified), review_counts=counts,
                                combiner=used, combiner_note=note)
