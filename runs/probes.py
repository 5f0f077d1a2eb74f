"""The run's calibration probes (`verify.calibration = "probes"`): choose and ask them with the
run's own completion settings, then, once the verifier is fitted, score and label them and fit
the per-relation thresholds the combiner accepts at.

Probes are asked outside the state store: they are not items' results (nothing of them is
exported), and the LLM response cache already makes an unchanged re-run free.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kgenrich.kg.records import Entity, SourceKind, StageStats, Triple
from kgenrich.pipeline import assemble
from kgenrich.pipeline.candidates import to_triples
from kgenrich.pipeline.complete import labels_for_prompts
from kgenrich.pipeline.complete_choice import choice_relations, complete_gaps, rank_options
from kgenrich.pipeline.llm.base import LLM, LLMAnswer, LLMRequest, UsageTotals
from kgenrich.pipeline.probes import Probes, choose_probes
from kgenrich.pipeline.verify import ProbabilityFn, verify_context, verify_triples
from kgenrich.runs.book import enabled_stages
from kgenrich.runs.graph import BaseGraph
from kgenrich.runs.outcomes import FailureTracker
from kgenrich.settings import Settings, VerifySettings
from kgenrich.verification.combiner import Combiner
from kgenrich.verification.probe_fit import (
    ProbeLabel,
    RelationCalibration,
    describe,
    fit_probe_calibration,
)
from kgenrich.verification.scorers import Scorer

logger = logging.getLogger(__name__)


#: The stage name the probes' requests are counted under (their own row of the run report).
STAGE = "calibration probes"


class _Restaged:
    """An `LLM` that sends every request under ``STAGE``: probes are completion requests, but
    counting them as completion would mix calibration into what the real gaps cost."""

    def __init__(self, llm: LLM) -> None:
        self._llm = llm

    @property
    def model_id(self) -> str:
        return self._llm.model_id

    def complete(self, request: LLMRequest[Any]) -> LLMAnswer[Any]:
        return self._llm.complete(replace(request, stage=STAGE))

    def complete_many(self, requests: Sequence[LLMRequest[Any]]) -> list[LLMAnswer[Any]]:
        return self._llm.complete_many([replace(r, stage=STAGE) for r in requests])

    def usage(self) -> UsageTotals:
        return self._llm.usage()


@dataclass(frozen=True)
class ProbeRun:
    """The asked probes: their masked groups, the completions proposed, what asking cost."""

    probes: Probes
    candidates: tuple[Triple, ...]
    #: the run's entities plus those the probes' answers minted (kept out of the run's index)
    entities: Mapping[str, Entity]
    stats: StageStats
    failed_items: int


def ask_probes(graph: BaseGraph, *, llm: LLM, settings: Settings) -> ProbeRun | None:
    """Choose the probes and ask the LLM to complete them; None when calibration is off, the
    run completes nothing, or no item has a trusted fact to mask."""
    v, c = settings.verify, settings.complete
    if v.calibration != "probes" or "complete" not in enabled_stages(settings):
        return None
    probes = choose_probes(
        graph.items, trusted=assemble.trusted(graph.base), ontology=graph.ontology,
        item_entity=graph.item_entity, relations=c.relations, exclude=set(c.items or ()),
        n_items=min(v.probe_items, max(1, int(v.probe_max_share * len(graph.items)))),
        mask_fraction=v.probe_mask_fraction, seed=v.probe_seed)
    if not probes.items:
        logger.info("calibration probes: no item has a trusted fact to mask")
        return None
    visible = probes.visible(graph.base)
    facts = assemble.item_facts(probes.items, triples=visible,
                                labels=graph.labels(), item_entity=graph.item_entity)
    # the prompts real gaps get (same vocabularies, same shared system prompt)
    by_type = labels_for_prompts(assemble.labels_by_type(graph.index), ontology=graph.ontology,
                                 max_candidates=c.max_candidates)
    # multiple-choice candidates as real gaps get them, ranked without the masked answers
    options = rank_options(list(probes.items), gaps=probes.gaps, triples=visible,
                           labels=graph.labels(), item_entity=graph.item_entity,
                           size=c.choice_size, relations=choice_relations(
                               graph.ontology, modes=c.modes, default=c.open_mode),
                           require_evidence=c.choice_needs_evidence)
    tracked = FailureTracker(_Restaged(llm))
    logger.info("calibration probes: asking %d items (%d masked groups)",
                len(probes.items), len(probes.masked))
    result = complete_gaps(list(probes.items), llm=tracked, ontology=graph.ontology,
                           gaps=probes.gaps, facts=facts, labels_by_type=by_type,
                           samples=c.samples, temperature=c.temperature,
                           max_candidates=c.max_candidates, per_item=c.per_item,
                           options=options, picks=c.choice_picks,
                           top_logprobs=c.choice_logprobs)
    # a copy: entities minted for the probes' answers must not reach the run's export
    index = copy.deepcopy(graph.index)
    triples, _ = to_triples(result.kept, index=index, source=SourceKind.COMPLETED,
                            item_links=graph.links)
    return ProbeRun(probes=probes, candidates=tuple(triples),
                    entities=dict(index.by_id),
                    stats=result.stats, failed_items=len(tracked.failures))


@dataclass(frozen=True)
class Calibration:
    """The probes scored and labelled, and the combiner with their thresholds."""

    combiner: Combiner
    #: (triple, correct) for every probe proposal, scored by the run's verifier
    labelled: tuple[tuple[Triple, bool], ...]
    note: str
    #: the text fallback fitted for the probes, if they needed one (verification re-uses it)
    fallback: ProbabilityFn | None
    probes: ProbeRun

    @property
    def by_relation(self) -> Mapping[str, RelationCalibration]:
        """The thresholds the combiner holds (derived, so the two cannot disagree)."""
        return self.combiner.calibration

    def unreachable(self) -> frozenset[str]:
        """Relations whose probes reached the target precision at no threshold."""
        return frozenset(r for r, c in self.by_relation.items() if math.isinf(c.accept_at))


def calibrate(
    run: ProbeRun, *, graph: BaseGraph, scorer: Scorer, combiner: Combiner,
    fallback: Callable[[], ProbabilityFn] | None, settings: VerifySettings,
) -> Calibration:
    """Verify the probe proposals with ``combiner``, label them against the masked tails and
    return ``combiner`` with per-relation thresholds fitted on them. ``fallback`` fits the text
    fallback, called only if a probe proposal names an entity the KGE never saw."""
    v = settings
    visible = run.probes.visible(graph.base)
    known = {t.key for t in visible}
    fresh = [t for t in run.candidates if t.key not in known]
    fitted_fallback = (fallback() if fallback is not None
                       and any(not scorer.knows(*t.key) for t in fresh) else None)
    # the masked triples must not speak for their own answers (a catalog attribute would)
    context = replace(verify_context(visible), fallback=fitted_fallback)
    stage = verify_triples(fresh, ontology=graph.ontology,
                           entity_types={k: e.type for k, e in run.entities.items()},
                           scorer=scorer, combiner=combiner, context=context)
    labelled = tuple((t, run.probes.is_correct(t)) for t in stage.kept)
    rows = [ProbeLabel(relation=t.relation, item_id=t.provenance.item_id or t.head,
                       signals={s: float(t.provenance.scores.get(s, math.nan))
                                for s in v.probe_signals},
                       correct=ok)
            for t, ok in labelled
            # only what could be auto-accepted: an entity the KGE never saw never is
            if t.provenance.scores.get("kge_probability") is not None]
    fitted = fit_probe_calibration(rows, target_precision=v.target_precision,
                                   min_probes=v.probe_min_labels, signals=v.probe_signals)
    note = (f"{len(run.probes.items)} probe items, {len(run.probes.masked)} masked groups, "
            f"{len(labelled)} proposals ({sum(ok for _, ok in labelled)} right); "
            # a probe whose request failed is missing from the labels: say how many
            + (f"{run.failed_items} probe items failed and are not counted; "
               if run.failed_items else "")
            + describe(fitted))
    logger.info("calibration probes: %s", note)
    calibrated = replace(combiner, calibration=fitted,
                         name=f"{combiner.name}+probes" if fitted else combiner.name)
    return Calibration(combiner=calibrated, labelled=labelled, note=note,
                       fallback=fitted_fallback, probes=run)


def probe_rows(calibration: Calibration) -> list[dict[str, Any]]:
    """One row per labelled probe proposal (``calibration_probes.jsonl``): what the thresholds
    were fitted on, so a user can see why a relation is or is not auto-accepted."""
    labels = {k: e.label for k, e in calibration.probes.entities.items()}
    rows = []
    for t, ok in calibration.labelled:
        scores = t.provenance.scores
        rows.append({"item_id": t.provenance.item_id, "relation": t.relation,
                     "tail": labels.get(t.tail, t.tail), "correct": ok,
                     "confidence": scores.get("confidence"),
                     "kge_probability": scores.get("kge_probability"),
                     "agreement": scores.get("agreement"), "samples": scores.get("samples"),
                     "masked": sorted(labels.get(x, x) for x in calibration.probes.probes.masked
                                      .get((t.head, t.relation), ()))})
    return rows


def masked_keys(run: ProbeRun | None) -> Sequence[tuple[str, str, str]]:
    """The trusted triples the verifier must not train on (the probes' answer key)."""
    return sorted(run.probes.masked_keys) if run else ()


def skip_relations(calibration: Calibration | None, settings: Settings) -> frozenset[str]:
    """What completion need not ask (``complete.skip_unreachable``)."""
    if calibration is None or not settings.complete.skip_unreachable:
        return frozenset()
    return calibration.unreachable()
