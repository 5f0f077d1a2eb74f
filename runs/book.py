"""A run's bookkeeping in the state store: fingerprints and the catalog diff when it starts,
retraction of removed items, item statuses and failures when the LLM stages are done."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kgenrich.kg.ids import item_entity_id
from kgenrich.kg.records import Triple
from kgenrich.runs.bookkeeping import FailureRow, RetractionRow, removed_triples
from kgenrich.runs.engine import StageRun
from kgenrich.runs.fingerprints import (
    STAGES,
    CatalogDiff,
    diff_catalog,
    item_fingerprint,
    item_seed_facts,
    ontology_digest,
    stage_fingerprints,
)
from kgenrich.runs.graph import BaseGraph
from kgenrich.runs.state import DONE, FAILED, PENDING, StateStore
from kgenrich.settings import Settings

logger = logging.getLogger(__name__)

REMOVED_REASON = "item removed from catalog"


def run_name(given: str | None) -> str:
    return given or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def enabled_stages(settings: Settings) -> list[str]:
    """The LLM stages this run's settings switch on, in pipeline order."""
    d, x, c = settings.discover, settings.extract, settings.complete
    on = {"discover": d.use_spacy or d.use_llm, "extract": x.enabled, "complete": c.enabled}
    return [s for s in STAGES if on[s]]


def fingerprints(graph: BaseGraph, *, settings: Settings) -> dict[str, dict[str, str]]:
    """Item id -> stage -> fingerprint of that item's input to the stage."""
    seed_facts = item_seed_facts(graph.seed_triples, item_entity=graph.item_entity)
    onto = ontology_digest(graph.ontology)
    context = settings.llm.context_window()
    stage_settings = {
        # the context size decides how long texts are cut into chunks
        "discover": {**settings.discover.model_dump(mode="json"), "context": context},
        "extract": {**settings.extract.model_dump(mode="json"), "context": context},
        # which items are asked is not part of an item's input: a selection defers, never re-asks
        "complete": settings.complete.model_dump(mode="json", exclude={"max_items", "items"}),
    }
    return {it.id: stage_fingerprints(it, model=settings.llm.model, ontology=onto,
                                      settings=stage_settings, seed_facts=seed_facts[it.id])
            for it in graph.items}


@dataclass
class Settled:
    """Items a stage could not finish (retried next run) and items left for a later run."""

    failures: list[FailureRow]
    deferred: set[str]

    @property
    def failed_items(self) -> dict[str, str]:
        return {f.item_id: f"{f.stage}: {f.error}" for f in self.failures}


@dataclass
class RunBook:
    """One run's entry in the state store, from ``open_run`` to ``finish``."""

    state: StateStore
    run: str
    run_id: int
    fingerprints: dict[str, dict[str, str]]
    diff: CatalogDiff
    retracted: list[RetractionRow] = field(default_factory=list)

    def wanted(self, stage: str) -> dict[str, str]:
        return {i: f[stage] for i, f in self.fingerprints.items()}

    def settle(self, graph: BaseGraph, runs: Mapping[str, StageRun]) -> Settled:
        """Record every item's status (done, failed, deferred) and list the failed ones."""
        stored = {(f.item_id, f.stage): f for f in self.state.failures()}
        failures = [
            FailureRow(item_id=it.id, stage=s, error=err,
                       attempts=stored[(it.id, s)].attempts if (it.id, s) in stored else 1,
                       run=self.run, kept_previous=it.id in runs[s].kept_previous)
            for it in graph.items for s in runs if (err := runs[s].failed.get(it.id)) is not None
        ]
        settled = Settled(failures=failures,
                          deferred={i for r in runs.values() for i in r.deferred})
        failed = settled.failed_items
        self.state.record_items(self.run, {
            it.id: (item_fingerprint(self.fingerprints[it.id]),
                    FAILED if it.id in failed else PENDING if it.id in settled.deferred
                    else DONE, failed.get(it.id))
            for it in graph.items})
        return settled

    def incremental_summary(
        self, runs: Mapping[str, StageRun], *, settled: Settled, chunk_size: int
    ) -> dict[str, Any]:
        return {
            "catalog": self.diff.counts(),
            "asked": {s: r.asked for s, r in runs.items()},
            "reused": {s: r.reused for s, r in runs.items()},
            "deferred": len(settled.deferred),
            "chunk_size": chunk_size,
            "state": str(self.state.path),
        }

    def finish(self, summary: Mapping[str, Any]) -> None:
        self.state.finish_run(self.run_id, status="done", summary=summary)


def open_run(
    state: StateStore, *, run: str, graph: BaseGraph, settings: Settings,
    previous_triples: Callable[[], Sequence[Triple]], store: Path | None,
) -> RunBook:
    """Start the run: fingerprint every item, diff against the items the store knows, and
    retract the removed ones (from the state and, if given, the graph store)."""
    fps = fingerprints(graph, settings=settings)
    run_id = state.begin_run(run)
    diff = diff_catalog(state.known_items(), {i: item_fingerprint(f) for i, f in fps.items()})
    book = RunBook(state=state, run=run, run_id=run_id, fingerprints=fps, diff=diff)
    book.retracted = _retract_removed(state, run=run, removed=diff.removed,
                                      previous_triples=previous_triples, store=store)
    return book


def _retract_removed(
    state: StateStore, *, run: str, removed: Sequence[str],
    previous_triples: Callable[[], Sequence[Triple]], store: Path | None,
) -> list[RetractionRow]:
    """Record what left with the removed items (their previous triples and stored records), mark
    them removed in one transaction, and retract them from the graph store if there is one."""
    if not removed:
        return []
    gone = removed_triples(previous_triples(), item_ids=removed, item_entity=item_entity_id)
    records = {stage: state.results(stage) for stage in STAGES}
    at = datetime.now(UTC).isoformat()
    rows = [
        RetractionRow(
            run=run, at=at, item_id=i, reason=REMOVED_REASON,
            triples=[t.model_dump(mode="json") for t in gone[i]],
            records={s: json.loads(r[i].kept) for s, r in records.items() if i in r})
        for i in removed
    ]
    state.remove_items(run, {r.item_id: (REMOVED_REASON,
                                         r.model_dump_json(include={"triples", "records"}))
                             for r in rows})
    if store is not None:
        from kgenrich.kg.store import GraphStore  # local: opens pyoxigraph

        with GraphStore.open(store) as gstore:
            done = gstore.retract(removed, reason=REMOVED_REASON, run=run)
        logger.info("retracted %d statement(s) of %d removed item(s) from %s",
                    done.statements, len(removed), store)
    return rows
