"""Prefect wiring for the `enrich` flow: thin tasks around the stages; the flow reads the inputs,
composes the tasks and writes the exports and the run report. No business logic here.

Runs are incremental (see `pipeline/incremental.py`, `kg/state.py`): the LLM stages run only on
items whose fingerprint changed, in chunks submitted to the flow's task runner; each finished
chunk is committed to the state store in one transaction, so a killed run resumes after it.
Unchanged items re-use their stored records; verification and export cover the whole graph."""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from collections import deque  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from prefect import flow, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NONE  # noqa: E402
from prefect.futures import PrefectFuture, as_completed  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from kgenrich.flows import io as fio  # noqa: E402
from kgenrich.kg.atomic import atomic_write  # noqa: E402
from kgenrich.kg.ids import item_entity_id  # noqa: E402
from kgenrich.kg.records import (  # noqa: E402
    Entity,
    Item,
    Ontology,
    Rejection,
    SourceKind,
    StageResult,
    StageStats,
    Triple,
    dedupe_triples,
)
from kgenrich.kg.review import ReviewRow  # noqa: E402
from kgenrich.kg.state import DONE, FAILED, PENDING, ChunkCommit, StateStore  # noqa: E402
from kgenrich.settings import Settings, VerifySettings  # noqa: E402
from kgenrich.pipeline import assemble  # noqa: E402
from kgenrich.pipeline import incremental as inc  # noqa: E402
from kgenrich.pipeline.candidates import to_triples  # noqa: E402
from kgenrich.pipeline.catalog import catalog_triples, item_entities  # noqa: E402
from kgenrich.pipeline.complete import (  # noqa: E402
    complete_tails,
    labels_for_prompts,
    missing_relations,
)
from kgenrich.pipeline.discover import discover_entities, load_nlp  # noqa: E402
from kgenrich.pipeline.extract import extract_relations  # noqa: E402
from kgenrich.pipeline.llm.base import LLM  # noqa: E402
from kgenrich.pipeline.llm.factory import make_llm  # noqa: E402
from kgenrich.pipeline.report import RunReport, build_report, render_markdown  # noqa: E402
from kgenrich.pipeline.resolve import EntityIndex  # noqa: E402
from kgenrich.pipeline.review import review_queue  # noqa: E402
from kgenrich.pipeline.verify import (  # noqa: E402
    Context,
    ReviewedVerification,
    verify_context,
    verify_with_review,
)
from kgenrich.verification.combiner import Combiner, choose_combiner  # noqa: E402
from kgenrich.verification.scorers import Scorer, fit_scorer  # noqa: E402

logger = logging.getLogger(__name__)


class EnrichInputs(BaseModel):
    """Where the flow reads from and writes to. Settings hold everything else."""

    catalog: Path
    mapping: fio.MappingSpec
    ontology: Path
    out_dir: Path
    seed: Path | None = None
    seed_format: str = "auto"
    seed_link: Path | None = None
    seed_on_error: str = "raise"  # "skip": bad seed lines become counted rejections
    interactions: Path | None = None
    # An Oxigraph graph store (kg/store.py) to retract removed items from, if there is one.
    store: Path | None = None
    # Verdicts from a person (JSONL, see pipeline/review.py); default: <out_dir>/review.jsonl
    review: Path | None = None
    run_name: str | None = None
    extra_report: dict[str, Any] = Field(default_factory=dict)


# ---- tasks: one stage call on one chunk each. LLM tasks skip Prefect's cache: the state store
# (per-item results) and the LLM response cache make re-runs free, and an LLM client is not a
# cacheable input. Each LLM task wraps the client in a FailureTracker so the flow knows which
# items of the chunk must be asked again next run.


@task(name="catalog", cache_policy=NONE)
def catalog_task(
    items: list[Item], *, ontology: Ontology, index: EntityIndex, links: dict[str, str]
) -> StageResult[Triple]:
    return catalog_triples(items, ontology=ontology, index=index, item_links=links)


@task(name="discover", cache_policy=NONE, retries=1, retry_delay_seconds=5)
def discover_task(
    items: list[Item], *, llm: LLM | None, ontology: Ontology, use_spacy: bool,
    labels: dict[str, list[str]], max_per_item: int,
) -> inc.ChunkOutcome:
    nlp = load_nlp(labels)[0] if use_spacy else None
    tracked = inc.FailureTracker(llm) if llm is not None else None
    result = discover_entities(items, llm=tracked, ontology=ontology, nlp=nlp,
                               max_per_item=max_per_item)
    return inc.split_outcome("discover", [it.id for it in items], result,
                             tracked.failures if tracked else {})


@task(name="extract", cache_policy=NONE, retries=1, retry_delay_seconds=5)
def extract_task(
    items: list[Item], *, llm: LLM, ontology: Ontology, max_per_item: int
) -> inc.ChunkOutcome:
    tracked = inc.FailureTracker(llm)
    result = extract_relations(items, llm=tracked, ontology=ontology, max_per_item=max_per_item)
    return inc.split_outcome("extract", [it.id for it in items], result, tracked.failures)


@task(name="complete", cache_policy=NONE, retries=1, retry_delay_seconds=5)
def complete_task(items: list[Item], *, llm: LLM, **kwargs: Any) -> inc.ChunkOutcome:
    tracked = inc.FailureTracker(llm)
    result = complete_tails(items, llm=tracked, **kwargs)
    return inc.split_outcome("complete", [it.id for it in items], result, tracked.failures)


@task(name="fit-scorer", cache_policy=NONE)
def fit_scorer_task(
    name: str, trusted: list[Triple], *, settings: VerifySettings, labels: dict[str, str]
) -> Scorer:
    return fit_scorer(name, [t.key for t in trusted], settings=settings, labels=labels)


@task(name="verify", cache_policy=NONE)
def verify_task(
    candidates: list[Triple], *, scorer: Scorer, ontology: Ontology,
    entity_types: dict[str, str], combiner: Combiner, context: Context,
    reviewed: list[ReviewRow], settings: VerifySettings,
) -> ReviewedVerification:
    return verify_with_review(
        candidates, ontology=ontology, entity_types=entity_types, scorer=scorer,
        combiner=combiner, context=context, reviewed=reviewed,
        refit_min_labels=settings.refit_min_labels, target_precision=settings.target_precision,
    )


def _run_name(inputs: EnrichInputs) -> str:
    return inputs.run_name or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class _StageRun:
    """One LLM stage over the catalog: fresh and re-used per-item results, and failures."""

    result: StageResult[Any]
    asked: int = 0  # items sent to the stage this run
    reused: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    kept_previous: set[str] = field(default_factory=set)
    deferred: tuple[str, ...] = ()


def chunk_window(concurrency: int, chunk_size: int) -> int:
    """Chunk tasks in flight per stage: enough queued requests to keep `concurrency` LLM calls
    busy while one chunk drains (two concurrencies' worth), plus one."""
    return -(-2 * concurrency // chunk_size) + 1


def _run_stage(
    state: StateStore, *, run: str, stage: str, items: Sequence[Item],
    wanted: Mapping[str, str], chunk_size: int,
    submit: Callable[[list[Item]], PrefectFuture[inc.ChunkOutcome]],
    window: int,
    plan: Callable[[list[Item]], inc.CompletionPlan] | None = None,
) -> _StageRun:
    """Submit the pending items in chunks, commit each finished chunk, and assemble the stage's
    result over every item in catalog order from fresh and stored records."""
    stored = state.results(stage)
    todo = inc.pending(items, wanted=wanted,
                       stored={i: r.fingerprint for i, r in stored.items()})
    settled = inc.CompletionPlan(ask=tuple(todo), nothing_to_ask=(), failed={}, deferred=())
    if plan is not None:
        settled = plan(todo)
        if settled.nothing_to_ask or settled.failed:
            state.commit_chunk(run, ChunkCommit(
                stage, done={i: (wanted[i], "[]", "[]") for i in settled.nothing_to_ask},
                failed={i: (wanted[i], err) for i, err in settled.failed.items()}))
    fresh: dict[str, inc.ItemResult] = dict.fromkeys(settled.nothing_to_ask, inc.ItemResult())
    failed = dict(settled.failed)
    stats: list[StageStats] = []
    loose: list[Rejection] = []
    # A sliding window of chunk tasks, not all at once: every chunk task runs its own pool of
    # LLM threads, and with thousands of items hundreds of tasks (thousands of threads) would
    # queue on the client's shared concurrency cap; measured at concurrency 32, that starved
    # the LLM between chunks (75 of 128 items/s). `window` chunks keep the cap busy.
    waiting = deque(inc.chunked(list(settled.ask), chunk_size))
    running: dict[PrefectFuture[inc.ChunkOutcome], list[Item]] = {}
    while waiting or running:
        while waiting and len(running) < window:
            chunk = waiting.popleft()
            running[submit(chunk)] = chunk
        fut = next(as_completed(list(running)))
        outcome = _outcome(fut, stage, running.pop(fut))
        state.commit_chunk(run, ChunkCommit(
            stage, done={i: (wanted[i], *inc.encode_result(r)) for i, r in outcome.done.items()},
            failed={i: (wanted[i], err) for i, err in outcome.failed.items()}))
        fresh.update(outcome.done)
        failed.update(outcome.failed)
        stats.append(outcome.stats)
        loose += outcome.unattributed
    per_item: dict[str, inc.ItemResult] = {}
    kept_previous: set[str] = set()
    pending_ids = {it.id for it in todo}
    for it in items:
        if it.id in fresh:
            per_item[it.id] = fresh[it.id]
        elif it.id in stored and (it.id not in pending_ids or it.id in failed
                                  or it.id in settled.deferred):
            # unchanged: re-use; failed or deferred: keep the older result rather than drop it
            old = stored[it.id]
            per_item[it.id] = inc.decode_result(stage, old.kept, old.rejected)
            if it.id in pending_ids:
                kept_previous.add(it.id)
    if failed:
        logger.warning("%s: %d item(s) failed and will be retried next run", stage, len(failed))
    return _StageRun(
        result=inc.merge_results(items, per_item, stats=stats, extra_rejected=loose),
        asked=len(settled.ask), reused=len(items) - len(pending_ids), failed=failed,
        kept_previous=kept_previous, deferred=settled.deferred)


def _outcome(
    fut: PrefectFuture[inc.ChunkOutcome], stage: str, chunk: Sequence[Item]
) -> inc.ChunkOutcome:
    try:
        return fut.result()
    except Exception as err:  # noqa: BLE001 - a crashed chunk becomes recorded item failures
        logger.error("%s task failed for %d item(s): %r", stage, len(chunk), err)
        return inc.ChunkOutcome(stage=stage, done={}, stats=StageStats(),
                                failed={it.id: f"task failed: {err!r}" for it in chunk})


def _retract_removed(
    state: StateStore, *, run: str, removed: Sequence[str], inputs: EnrichInputs,
) -> list[inc.RetractionRow]:
    """Record what left with the removed items (their previous triples and stored records), mark
    them removed in one transaction, and retract them from the graph store if there is one."""
    if not removed:
        return []
    previous: list[Triple] = []
    if (inputs.out_dir / "triples.jsonl").is_file():
        previous = fio.read_run(inputs.out_dir)[1]
    gone = inc.removed_triples(previous, item_ids=removed, item_entity=item_entity_id)
    records = {stage: state.results(stage) for stage in inc.STAGES}
    at = datetime.now(UTC).isoformat()
    reason = "item removed from catalog"
    rows = [
        inc.RetractionRow(
            run=run, at=at, item_id=i, reason=reason,
            triples=[t.model_dump(mode="json") for t in gone[i]],
            records={s: json.loads(r[i].kept) for s, r in records.items() if i in r})
        for i in removed
    ]
    state.remove_items(run, {r.item_id: (reason, r.model_dump_json(include={"triples", "records"}))
                             for r in rows})
    if inputs.store is not None:
        from kgenrich.kg.store import GraphStore

        with GraphStore.open(inputs.store) as store:
            done = store.retract(removed, reason=reason, run=run)
        logger.info("retracted %d statement(s) of %d removed item(s) from %s",
                    done.statements, len(removed), inputs.store)
    return rows


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any] | BaseModel]) -> Path:
    with atomic_write(path) as f:
        for row in rows:
            f.write((row.model_dump_json() if isinstance(row, BaseModel)
                     else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


@flow(name="enrich", log_prints=False)
def enrich(inputs: EnrichInputs, settings: Settings | None = None) -> RunReport:
    """Catalog (+ seed KG) -> discovery, extraction, completion -> verification -> exports."""
    settings = settings or Settings()
    start = time.perf_counter()
    run = _run_name(inputs)
    ontology = fio.read_ontology(inputs.ontology)
    items = fio.read_items(inputs.catalog, inputs.mapping, ontology=ontology)
    seed = fio.read_seed_graph(inputs, ontology=ontology)
    links = dict(seed.item_links) if seed else {}
    item_entity = {it.id: links.get(it.id, f"item/{it.id}") for it in items}

    index = EntityIndex.build([*(seed.entities if seed else ()),
                               *item_entities(items, ontology=ontology, item_links=links)])
    stages: dict[str, StageResult[Any]] = {}
    if seed is not None:
        stages["seed"] = StageResult(kept=seed.triples, rejected=seed.rejected)
    stages["catalog"] = catalog_task(items, ontology=ontology, index=index, links=links)
    base = dedupe_triples([*(seed.triples if seed else ()), *stages["catalog"].kept])

    d, x, c = settings.discover, settings.extract, settings.complete
    seed_facts = inc.item_seed_facts(seed.triples if seed else (), item_entity=item_entity)
    onto = inc.ontology_digest(ontology)
    stage_settings = {
        "discover": d.model_dump(mode="json"),
        "extract": x.model_dump(mode="json"),
        "complete": c.model_dump(mode="json", exclude={"max_items"}),
    }
    fps = {it.id: inc.stage_fingerprints(it, model=settings.llm.model, ontology=onto,
                                         settings=stage_settings, seed_facts=seed_facts[it.id])
           for it in items}
    enabled = [s for s, on in (("discover", d.use_spacy or d.use_llm), ("extract", x.enabled),
                               ("complete", c.enabled)) if on]
    runs: dict[str, _StageRun] = {}

    def wanted(stage: str) -> dict[str, str]:
        return {i: f[stage] for i, f in fps.items()}

    with StateStore.open(settings.state_path or inputs.out_dir / "state.sqlite") as state:
        run_id = state.begin_run(run)
        diff = inc.diff_catalog(state.known_items(),
                                {i: inc.item_fingerprint(f) for i, f in fps.items()})
        retracted = _retract_removed(state, run=run, removed=diff.removed, inputs=inputs)
        stage_run: dict[str, Any] = {"state": state, "run": run, "items": items,
                     "chunk_size": settings.chunk_size,
                     "window": chunk_window(settings.llm.concurrency, settings.chunk_size)}
        with make_llm(settings.llm) as llm:
            if "discover" in enabled:
                known_labels = assemble.labels_by_type(index)
                runs["discover"] = _run_stage(
                    **stage_run, stage="discover", wanted=wanted("discover"),
                    submit=lambda chunk: discover_task.submit(
                        chunk, llm=llm if d.use_llm else None, ontology=ontology,
                        use_spacy=d.use_spacy, labels=known_labels, max_per_item=d.max_per_item))
                stages["discover"] = runs["discover"].result
                assemble.register_mentions(stages["discover"].kept, index=index)
            candidates: list[Triple] = []
            if "extract" in enabled:
                runs["extract"] = _run_stage(
                    **stage_run, stage="extract", wanted=wanted("extract"),
                    submit=lambda chunk: extract_task.submit(
                        chunk, llm=llm, ontology=ontology, max_per_item=x.max_per_item))
                stages["extract"] = runs["extract"].result
                extracted, _ = to_triples(stages["extract"].kept, index=index,
                                          source=SourceKind.EXTRACTED, item_links=links)
                candidates += extracted
            if "complete" in enabled:
                label_of = {e.id: e.label for e in index.by_id.values()}
                known = [*base, *candidates]
                gaps = missing_relations(items, triples=known, ontology=ontology,
                                         relations=c.relations, item_entity=item_entity)
                upstream = {i: e for s in ("discover", "extract") if s in runs
                            for i, e in runs[s].failed.items()}
                all_facts = assemble.item_facts(items, triples=known, labels=label_of,
                                                item_entity=item_entity)
                by_type = labels_for_prompts(assemble.labels_by_type(index), ontology=ontology,
                                             max_candidates=c.max_candidates)

                def submit_complete(chunk: list[Item]) -> PrefectFuture[inc.ChunkOutcome]:
                    # only this chunk's share: Prefect walks every task parameter on submit
                    return complete_task.submit(
                        chunk, llm=llm, ontology=ontology,
                        gaps={it.id: gaps[it.id] for it in chunk if it.id in gaps},
                        facts={it.id: all_facts[it.id] for it in chunk},
                        labels_by_type=by_type, samples=c.samples, temperature=c.temperature,
                        max_candidates=c.max_candidates)

                runs["complete"] = _run_stage(
                    **stage_run, stage="complete", wanted=wanted("complete"),
                    submit=submit_complete,
                    plan=lambda todo: inc.plan_completion(todo, gaps=gaps,
                                                          upstream_failed=upstream,
                                                          max_items=c.max_items))
                stages["complete"] = runs["complete"].result
                completed, _ = to_triples(stages["complete"].kept, index=index,
                                          source=SourceKind.COMPLETED, item_links=links)
                candidates += completed
            usage = llm.usage()

        stored_failures = {(f.item_id, f.stage): f for f in state.failures()}
        failures = [
            inc.FailureRow(item_id=it.id, stage=s, error=err,
                           attempts=stored_failures[(it.id, s)].attempts
                           if (it.id, s) in stored_failures else 1,
                           run=run, kept_previous=it.id in runs[s].kept_previous)
            for it in items for s in enabled if (err := runs[s].failed.get(it.id)) is not None
        ]
        failed_items = {f.item_id: f"{f.stage}: {f.error}" for f in failures}
        deferred = {i for r in runs.values() for i in r.deferred}
        state.record_items(run, {
            it.id: (inc.item_fingerprint(fps[it.id]),
                    FAILED if it.id in failed_items else PENDING if it.id in deferred else DONE,
                    failed_items.get(it.id))
            for it in items})
        all_retractions = state.retractions()

        base_keys = {t.key for t in base}
        candidates = [t for t in dedupe_triples(candidates) if t.key not in base_keys]
        v = settings.verify
        entity_labels = {e.id: e.label for e in index.by_id.values()}
        verifier = fit_scorer_task(v.kge_scorer, assemble.trusted(base), settings=v,
                                   labels=entity_labels)
        entity_types = {e.id: e.type for e in index.by_id.values()}
        context = verify_context(base)
        if v.text_fallback and any(not verifier.knows(*t.key) for t in candidates):
            context = dataclasses.replace(context, fallback=fit_scorer_task(
                "text", assemble.trusted(base), settings=v, labels=entity_labels).probability)
        review_file = inputs.review or inputs.out_dir / "review.jsonl"
        reviewed = fio.read_review(review_file) if review_file.is_file() else []
        combiner = choose_combiner(
            v.combiner, review_band=v.review_band, accept_at=v.accept_at,
            target_precision=v.target_precision,
            model=fio.read_confidence_model(v.confidence_model) if v.confidence_model else None)
        checked = verify_task(candidates, scorer=verifier, ontology=ontology,
                              entity_types=entity_types, combiner=combiner, context=context,
                              reviewed=reviewed, settings=v)
        stages["verify"] = checked.stage
        combiner_note, review_counts = checked.combiner_note, dict(checked.review_counts)
        triples = [*base, *checked.triples]
        entities = _used_entities(index, triples)
        labels = {e.id: e.label for e in entities}

        incremental = {
            "catalog": diff.counts(),
            "asked": {s: r.asked for s, r in runs.items()},
            "reused": {s: r.reused for s, r in runs.items()},
            "deferred": len(deferred),
            "chunk_size": settings.chunk_size,
            "state": str(state.path),
        }
        report = build_report(
            run, stages, triples, wall_seconds=time.perf_counter() - start,
            extra={"llm model": usage_model(settings), "verifier": verifier.summary(),
                   "confidence combiner": combiner_note,
                   "items": len(items), "entities": len(entities),
                   "llm failures": usage.failures, "incremental": incremental,
                   "failed items": len(failed_items),
                   "retracted items": [r.item_id for r in retracted],
                   **review_counts, **inputs.extra_report},
        )
        outputs = fio.write_exports(
            inputs.out_dir, entities=entities, triples=triples, items=[it.id for it in items],
            interactions=inputs.interactions, settings=settings.export,
        )
        if inputs.store is not None:
            from kgenrich.kg.store import GraphStore

            # Loading is idempotent: re-verified triples replace their old statements.
            with GraphStore.open(inputs.store, base=settings.export.base_iri) as gstore:
                gstore.load(entities, triples)
            outputs["store"] = inputs.store
        queue = review_queue(triples, labels=labels, previous={r.key: r for r in reviewed})
        outputs["review"] = fio.write_review(inputs.out_dir / "review.jsonl", queue)
        outputs["failures"] = _write_jsonl(inputs.out_dir / "failures.jsonl", failures)
        if all_retractions:
            outputs["retractions"] = _write_jsonl(inputs.out_dir / "retractions.jsonl",
                                                  all_retractions)
        report = report.model_copy(update={"outputs": {k: str(p) for k, p in outputs.items()}})
        report = report.model_copy(update={"totals": {**report.totals,
                                                      "wall_seconds": round(time.perf_counter()
                                                                            - start, 2)}})
        markdown = render_markdown(report) + inc.render_markdown_section(failures, retracted)
        fio.write_report(settings.reports_dir / run, report, markdown)
        fio.write_report(inputs.out_dir, report, markdown)
        state.finish_run(run_id, status="done", summary={
            **incremental, "failed items": len(failed_items), "retracted": len(retracted),
            "llm_calls": report.totals["llm_calls"]})
    create_markdown_artifact(markdown=markdown, key="enrich-report",
                             description=f"kgenrich run {run}")
    return report

def usage_model(settings: Settings) -> str:
    return f"{settings.llm.backend}:{settings.llm.model}"


def _used_entities(index: EntityIndex, triples: Sequence[Triple]) -> list[Entity]:
    # Every known entity is exported, also discovered ones no triple touches yet: a node with a
    # label and type is still a finding, and the next run may link it.
    del triples
    return list(index.by_id.values())
