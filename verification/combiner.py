"""How a candidate's signals become one confidence and a decision: the ``Combiner`` (the rule, a
fitted ``ConfidenceModel``), choosing one from settings, and refitting one on review verdicts.
Pure: files are read elsewhere."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kgenrich.kg.records import Decision, Triple
from kgenrich.kg.review import ReviewRow
from kgenrich.verification.confidence import (
    DEFAULT_MODEL,
    DEFAULT_THRESHOLD,
    ConfidenceFeatures,
    ConfidenceModel,
    features_from_triple,
)
from kgenrich.verification.probe_fit import RelationCalibration

logger = logging.getLogger(__name__)


def rule_confidence(*, kge_probability: float | None, agreement: float, evidence: bool) -> float:
    """One confidence from the available signals by a fixed rule (the default combiner).

    - Extracted triples (their evidence span was found in the item's text): the mean of 1.0 for
      the evidence and the KGE probability, since text is strong support.
    - Completed triples (model knowledge, no evidence): the KGE probability times the LLM's
      agreement across its k samples. A product, not a mean: measured on MovieLens-100K with
      k=1 (bench/enrichment_value.py), a mean accepted 44 of 64 invented directors because
      agreement alone contributed 0.5.
    - Without a KGE probability (an entity the model never saw) the confidence is capped at
      0.5 x the other signals, so such a triple can reach review but never auto-acceptance.
    """
    if kge_probability is None or math.isnan(kge_probability):
        return 0.5 * (1.0 if evidence else agreement)
    if evidence:
        return 0.5 * (1.0 + kge_probability)
    return kge_probability * agreement


@dataclass(frozen=True)
class Combiner:
    """How a candidate's signals become one confidence, and where the decisions fall.

    ``model`` None is the rule of ``rule_confidence``; otherwise the fitted logistic
    ``ConfidenceModel``. Accept at ``accept_at`` or above, review from ``review_from`` up to it,
    reject below. A triple with an entity the KGE never saw is never auto-accepted, whatever its
    confidence: it goes to review or stays ``unverified_new_entity``.
    """

    model: ConfidenceModel | None
    accept_at: float
    review_from: float
    name: str
    #: relation -> signal and threshold measured on calibration probes (`verification.probe_fit`);
    #: an LLM completion of such a relation is accepted on its relation's signal instead
    calibration: Mapping[str, RelationCalibration] = field(default_factory=dict)

    def probe_calibration(self, f: ConfidenceFeatures) -> RelationCalibration | None:
        """The probes' calibration that decides this candidate, if any (completions only:
        probes ask completion questions, so they say nothing about extracted triples)."""
        return None if f.extracted else self.calibration.get(f.relation)

    def gate(self, f: ConfidenceFeatures, confidence: float) -> tuple[str, float, float]:
        """(signal, its value, threshold) that decide acceptance: the confidence against
        ``accept_at``, or the signal and threshold the relation's probes chose."""
        cal = self.probe_calibration(f)
        if cal is None:
            return "confidence", confidence, self.accept_at
        value = cal.value(confidence=confidence, kge_probability=f.kge_probability,
                          agreement=f.agreement)
        return cal.signal, value, cal.accept_at

    @classmethod
    def rule(cls, review_band: tuple[float, float]) -> Combiner:
        return cls(model=None, accept_at=review_band[1], review_from=review_band[0], name="rule")

    def confidences(self, rows: Sequence[tuple[ConfidenceFeatures, bool]]) -> list[float]:
        """One confidence per (features, evidence found) row; a model scores all rows at once."""
        if self.model is not None:
            return [float(x) for x in self.model.predict([f for f, _ in rows])]
        out = []
        for f, evidence in rows:
            if f.kge_probability is None and f.fallback_probability is not None:
                # the rule's cap for unseen entities, scaled by what the text fallback thinks
                out.append(0.5 * f.fallback_probability * (1.0 if evidence else f.agreement))
            else:
                out.append(rule_confidence(
                    kge_probability=f.kge_probability, agreement=f.agreement, evidence=evidence))
        return out


def _rule(
    *, review_band: tuple[float, float], model: ConfidenceModel | None,
    accept_at: float | None, target_precision: float,
) -> Combiner:
    del model, target_precision  # the rule has no weights and no precision target
    if accept_at is None:
        return Combiner.rule(review_band)
    return Combiner(model=None, accept_at=accept_at, review_from=review_band[0], name="rule")


def _learned(
    *, review_band: tuple[float, float], model: ConfidenceModel | None,
    accept_at: float | None, target_precision: float,
) -> Combiner:
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


#: ``verify.combiner`` -> how to build that combiner.
COMBINERS: dict[str, Callable[..., Combiner]] = {"rule": _rule, "learned": _learned}


def choose_combiner(
    kind: str,
    *,
    review_band: tuple[float, float],
    model: ConfidenceModel | None,
    accept_at: float | None,
    target_precision: float,
) -> Combiner:
    """The combiner named ``kind`` in ``COMBINERS`` ("rule" or "learned", ``verify.combiner``).

    A learned combiner uses ``model`` (None: the shipped ``DEFAULT_MODEL``) and accepts at
    ``accept_at``, else at the lowest threshold reaching ``target_precision`` on the model's own
    fit data (the default model ships ``DEFAULT_THRESHOLD``, chosen by cross-validation)."""
    try:
        build = COMBINERS[kind]
    except KeyError:
        raise ValueError(
            f"unknown combiner {kind!r}; choose one of {sorted(COMBINERS)}"
        ) from None
    return build(review_band=review_band, model=model, accept_at=accept_at,
                 target_precision=target_precision)


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
