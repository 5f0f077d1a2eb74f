"""Verification: every candidate triple gets a schema check, a KGE probability (or an explicit
`unverified_new_entity` status when the KGE never saw one of its entities) and one confidence;
the confidence decides accept / review / reject.

The stage returns every candidate, annotated, in `kept` (nothing is dropped: rejected triples
are exported with their decision), and one `Rejection` per rejected triple for the report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from kg.records import Decision, Ontology, Rejection, SourceKind, StageResult, StageStats, Triple

STAGE = "verify"

#: Maps raw KGE scores (with their relations) to probabilities of being true.
ProbabilityFn = Callable[[np.ndarray, Sequence[str]], np.ndarray]
#: Which (head, relation, tail) the KGE model has embeddings for.
KnowsFn = Callable[[str, str, str], bool]
ScoreFn = Callable[[Sequence[tuple[str, str, str]]], np.ndarray]


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


def combine_confidence(
    *, kge_probability: float | None, agreement: float, evidence: bool
) -> float:
    """One confidence from the available signals.

    A plain mean of the signals that exist: the KGE probability (when the model knows the
    entities), the LLM's agreement across samples and, for extracted triples, evidence found in
    the text (1.0). Without a KGE probability the confidence is capped at 0.5, so a triple with
    an unseen entity can reach review but never auto-acceptance.
    """
    signals = [agreement]
    if evidence:
        signals.append(1.0)
    if kge_probability is None or math.isnan(kge_probability):
        return 0.5 * float(np.mean(signals))
    signals.append(kge_probability)
    return float(np.mean(signals))


def verify_triples(
    candidates: Sequence[Triple],
    *,
    ontology: Ontology,
    entity_types: Mapping[str, str],
    knows: KnowsFn,
    score: ScoreFn,
    probability: ProbabilityFn,
    review_band: tuple[float, float],
    verifier_name: str,
) -> StageResult[Triple]:
    """Annotate each candidate with scores and a decision (see module docstring)."""
    start = time.perf_counter()
    low, high = review_band
    schema_ok: list[Triple] = []
    out: list[Triple] = []
    rejected: list[Rejection] = []
    for t in candidates:
        problem = type_problem(t, ontology=ontology, entity_types=entity_types)
        if problem is None:
            schema_ok.append(t)
            continue
        out.append(t.with_provenance(decision=Decision.REJECTED, reason=problem,
                                     accepted_by=verifier_name))
        rejected.append(Rejection(stage=STAGE, reason="schema: " + problem.split(" is ")[0],
                                  item_id=t.provenance.item_id, detail=f"{t.key}"))
    known = [t for t in schema_ok if knows(*t.key)]
    probs: dict[tuple[str, str, str], float] = {}
    if known:
        raw = score([t.key for t in known])
        p = probability(raw, [t.relation for t in known])
        probs = {t.key: float(x) for t, x in zip(known, p, strict=True)}
        raws = {t.key: float(x) for t, x in zip(known, raw, strict=True)}
    for t in schema_ok:
        prov = t.provenance
        agreement = float(prov.scores.get("agreement", 1.0))
        evidence = prov.source is SourceKind.EXTRACTED and bool(prov.evidence)
        kge_p = probs.get(t.key)
        conf = combine_confidence(kge_probability=kge_p, agreement=agreement, evidence=evidence)
        scores = dict(prov.scores) | {"confidence": conf}
        if kge_p is not None:
            scores |= {"kge": raws[t.key], "kge_probability": kge_p}
        if kge_p is None:
            decision, reason = Decision.UNVERIFIED_NEW_ENTITY, "KGE never saw an entity"
            if conf >= low:
                decision, reason = Decision.REVIEW, "unseen entity; confidence in review band"
        elif conf >= high:
            decision, reason = Decision.ACCEPTED, f"confidence {conf:.2f} >= {high}"
        elif conf >= low:
            decision, reason = Decision.REVIEW, f"confidence {conf:.2f} in review band"
        else:
            decision, reason = Decision.REJECTED, f"confidence {conf:.2f} < {low}"
            rejected.append(Rejection(stage=STAGE, reason="low confidence",
                                      item_id=prov.item_id, detail=f"{t.key}"))
        out.append(t.with_provenance(scores=scores, decision=decision, reason=reason,
                                     accepted_by=verifier_name))
    return StageResult(kept=tuple(out), rejected=tuple(rejected),
                       stats=StageStats(seconds=time.perf_counter() - start))
