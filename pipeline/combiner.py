"""Which confidence combiner a run uses: the rule, the shipped fitted model, a model file, or a
model refitted on the verdicts people wrote in the review queue (pure; files are read in flows).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from kgenrich.kg.records import Decision, Triple
from kgenrich.pipeline.confidence import (
    DEFAULT_MODEL,
    DEFAULT_THRESHOLD,
    ConfidenceFeatures,
    ConfidenceModel,
    features_from_triple,
)
from kgenrich.pipeline.review import ReviewRow
from kgenrich.pipeline.verify import Combiner

logger = logging.getLogger(__name__)


def base_combiner(
    kind: str,
    *,
    review_band: tuple[float, float],
    model: ConfidenceModel | None = None,
    accept_at: float | None = None,
    target_precision: float = 0.9,
) -> Combiner:
    """``kind`` "rule" or "learned"; a learned combiner uses ``model`` (default: the shipped
    ``DEFAULT_MODEL``) and accepts at ``accept_at``, else at the lowest threshold reaching
    ``target_precision`` on the model's own fit data (the default model ships
    ``DEFAULT_THRESHOLD``, chosen by cross-validation; see pipeline/confidence.py)."""
    if kind == "rule":
        return Combiner.rule(review_band) if accept_at is None else Combiner(
            model=None, accept_at=accept_at, review_from=review_band[0], name="rule")
    if kind != "learned":
        raise ValueError(f"unknown combiner {kind!r}; choose 'rule' or 'learned'")
    chosen = model or DEFAULT_MODEL
    if accept_at is None:
        if model is None:
            accept_at = DEFAULT_THRESHOLD
        else:
            pick = chosen.threshold_for_precision(target_precision)
            accept_at = pick.threshold  # +inf when no threshold reaches the target
    return Combiner(model=chosen, accept_at=accept_at,
                    review_from=min(review_band[0], accept_at),
                    name="learned" if model is None else "learned:file")


def review_examples(
    verified: Sequence[Triple], rows: Iterable[ReviewRow], *, context_features: Mapping[
        tuple[str, str, str], ConfidenceFeatures] | None = None,
) -> tuple[list[ConfidenceFeatures], list[int]]:
    """(features, label) for every verified candidate a person marked accept (1) / reject (0).

    Features come from the scores verification wrote on the triple (``kge_probability``,
    ``fallback_probability``, agreement, samples); ``context_features`` may supply fuller ones
    (catalog agreement, new entity) by key."""
    verdicts = {r.key: r.verdict == "accept" for r in rows if r.verdict}
    feats: list[ConfidenceFeatures] = []
    labels: list[int] = []
    for t in verified:
        if t.key not in verdicts or t.provenance.decision is Decision.TRUSTED:
            continue
        f = (context_features or {}).get(t.key)
        if f is None:
            sc = t.provenance.scores
            f = features_from_triple(
                t,
                kge_probability=sc.get("kge_probability"),
                fallback_probability=sc.get("fallback_probability"),
            )
        feats.append(f)
        labels.append(int(verdicts[t.key]))
    return feats, labels


def refit_from_review(
    base: Combiner,
    features: Sequence[ConfidenceFeatures],
    labels: Sequence[int],
    *,
    min_labels: int,
    target_precision: float,
) -> tuple[Combiner, str]:
    """A combiner fitted on reviewed candidates when there are enough verdicts of both kinds,
    else ``base``; with a one-line note for the run report either way."""
    n_true = sum(labels)
    n_false = len(labels) - n_true
    if len(labels) < min_labels or min(n_true, n_false) < 2:
        return base, (f"kept {base.name}: {len(labels)} reviewed verdicts "
                      f"({n_true} accept, {n_false} reject), refit needs {min_labels} "
                      "with at least 2 of each")
    model = ConfidenceModel.fit(features, labels, source={"fitted on": "review verdicts",
                                                          "n_rows": len(labels),
                                                          "n_true": n_true})
    pick = model.threshold_for_precision(target_precision)
    combiner = Combiner(model=model, accept_at=pick.threshold,
                        review_from=min(base.review_from, pick.threshold), name="learned:review")
    note = (f"refit on {len(labels)} reviewed verdicts ({n_true} accept, {n_false} reject); "
            f"accept at {pick.threshold:.3f} (in-sample precision {pick.precision:.2f}, "
            f"recall {pick.recall:.2f})" if pick.achieved else
            f"refit on {len(labels)} reviewed verdicts; no threshold reaches precision "
            f"{target_precision}: nothing is auto-accepted")
    logger.info("confidence combiner %s", note)
    return combiner, note
