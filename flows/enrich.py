"""Prefect wiring for the `enrich` flow: thin tasks around `kgenrich.runs`; the flow reads the
inputs, composes the tasks and writes the exports and the run report.

Runs are incremental (`kgenrich.runs`): the LLM stages run only on items whose fingerprint
changed, in chunks submitted to the flow's task runner; each finished chunk is committed to the
state store in one transaction, so a killed run resumes after it. Unchanged items re-use their
stored records; verification and export cover the whole graph.

No `from __future__ import annotations` here, on purpose: Prefect validates a run's parameters
against a model built from the flow's annotations, and a deployment's runner pickles the flow
function *by value* into its subprocess, keeping only the globals its body names. String
annotations would then be forward references to names (`EnrichInputs`) the pickled globals lack
and every run would fail validation; real annotations carry the classes themselves."""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TypeVar, cast  # noqa: E402

from prefect import Task, flow, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NONE  # noqa: E402
from prefect.utilities.annotations import quote  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from kgenrich.flows import io as fio  # noqa: E402
from kgenrich.flows.remote import record_flow_usage, stage_runner  # noqa: E402
from kgenrich.kg.io.catalog import CatalogMapping  # noqa: E402
from kgenrich.kg.records import Item, Ontology, StageResult, Triple  # noqa: E402
from kgenrich.kg.review import ReviewRow  # noqa: E402
from kgenrich.pipeline.catalog import catalog_triples  # noqa: E402
from kgenrich.pipeline.llm.base import LLM  # noqa: E402
from kgenrich.pipeline.report import RunReport  # noqa: E402
from kgenrich.pipeline.resolve import EntityIndex, Resolver  # noqa: E402
from kgenrich.pipeline.verify import ReviewedVerification  # noqa: E402
from kgenrich.runs import report as rr  # noqa: E402
from kgenrich.runs.book import open_run, run_name  # noqa: E402
from kgenrich.runs.chunks import CHUNK_JOBS  # noqa: E402
from kgenrich.runs.engine import ChunkFuture  # noqa: E402
from kgenrich.runs.graph import BaseGraph, base_graph  # noqa: E402
from kgenrich.runs.llm_stages import run_llm_stages  # noqa: E402
from kgenrich.runs.lock import output_lock  # noqa: E402
from kgenrich.runs.preflight import check_run  # noqa: E402
from kgenrich.runs.probes import (  # noqa: E402
    Calibration,
    ProbeRun,
    ask_probes,
    masked_keys,
    probe_rows,
    skip_relations,
)
from kgenrich.runs.state import StateStore  # noqa: E402
from kgenrich.runs.verification import (  # noqa: E402
    calibrate_run,
    fit_run_scorer,
    verify_candidates,
)
from kgenrich.settings import Settings, VerifySettings  # noqa: E402
from kgenrich.verification.scorers import Scorer  # noqa: E402

logger = logging.getLogger(__name__)
T = TypeVar("T")


class EnrichInputs(BaseModel):
    """Where the flow reads from and writes to. Settings hold everything else."""

    catalog: Path
    mapping: CatalogMapping
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


@task(name="catalog", cache_policy=NONE)
def catalog_task(
    items: list[Item], *, ontology: Ontology, index: EntityIndex, links: dict[str, str]
) -> StageResult[Triple]:
    return catalog_triples(items, ontology=ontology, index=index, item_links=links)


# One task per LLM stage, each running one chunk. They skip Prefect's cache: the state store
# (per-item results) and the LLM response cache make re-runs free, and an LLM client is not a
# cacheable input.
STAGE_TASKS: dict[str, Task[..., Any]] = {
    name: Task(fn=job, name=name, cache_policy=NONE, retries=1, retry_delay_seconds=5)
    for name, job in CHUNK_JOBS.items()
}


def unvisited(value: T) -> T:
    """``value`` wrapped so Prefect passes it to a task without walking it (a graph of
    thousands of records would be visited element by element); the task gets ``value``."""
    return cast(T, quote(value))


def submit_stage(stage: str, chunk: list[Item], kwargs: dict[str, Any]) -> ChunkFuture:
    return STAGE_TASKS[stage].submit(chunk, **kwargs)


@task(name="calibration-probes", cache_policy=NONE)
def probes_task(graph: BaseGraph, *, llm: LLM, settings: Settings) -> ProbeRun | None:
    return ask_probes(graph, llm=llm, settings=settings)


@task(name="fit-scorer", cache_policy=NONE)
def fit_scorer_task(graph: BaseGraph, settings: VerifySettings, cache_dir: Path,
                    probes: ProbeRun | None) -> Scorer:
    return fit_run_scorer(graph, settings=settings, cache_dir=cache_dir,
                          exclude=masked_keys(probes))


@task(name="calibrate", cache_policy=NONE)
def calibrate_task(graph: BaseGraph, probes: ProbeRun | None, *, scorer: Scorer,
                   settings: VerifySettings) -> Calibration | None:
    return calibrate_run(graph, probes, scorer=scorer, settings=settings,
                         confidence_model=fio.read_confidence_model(settings.confidence_model)
                         if settings.confidence_model else None)


@task(name="verify", cache_policy=NONE)
def verify_task(graph: BaseGraph, candidates: list[Triple], *, scorer: Scorer,
                settings: VerifySettings, reviewed: list[ReviewRow],
                calibration: Calibration | None) -> ReviewedVerification:
    return verify_candidates(
        graph, candidates, scorer=scorer, settings=settings, reviewed=reviewed,
        calibration=calibration,
        confidence_model=fio.read_confidence_model(settings.confidence_model)
        if settings.confidence_model else None)


@flow(name="enrich", log_prints=False)
def enrich(inputs: EnrichInputs, settings: Settings | None = None) -> RunReport:
    """Catalog (+ seed KG) -> discovery, extraction, completion -> verification -> exports."""
    settings = settings or Settings()
    start = time.perf_counter()
    ontology = fio.read_ontology(inputs.ontology)
    # read once: resolution skips rejected merges, verification applies the verdicts, the new
    # review queue keeps them
    reviewed = fio.previous_review(inputs.review or inputs.out_dir / "review.jsonl")
    graph = base_graph(
        ontology=ontology, items=fio.read_items(inputs.catalog, inputs.mapping, ontology=ontology),
        seed=fio.read_seed_graph(inputs.seed, format=inputs.seed_format, link=inputs.seed_link,
                                 on_error=inputs.seed_on_error, ontology=ontology,
                                 relation_map=settings.seed.relation_map),
        catalog=lambda items, **kw: catalog_task(items, **kw),
        resolver=Resolver.from_review(settings.resolve, reviewed))
    check_run(graph, mapping=inputs.mapping, seed_format=inputs.seed_format,
              settings=settings).raise_for_problems()  # before any LLM call or KGE training
    # One run per output folder (re-entrant: `kgenrich run` already holds it); served runs too.
    with output_lock(inputs.out_dir), \
            StateStore.open(settings.state_path or inputs.out_dir / "state.sqlite") as state:
        book = open_run(state, run=run_name(inputs.run_name), graph=graph, settings=settings,
                        previous_triples=lambda: fio.previous_triples(inputs.out_dir),
                        store=inputs.store)
        with stage_runner(settings, local=submit_stage) as runner:  # settings.task_runner
            # Calibrate first: the probes' thresholds say which relations are worth asking.
            probes = probes_task(unvisited(graph), llm=unvisited(runner.llm), settings=settings)
            record_flow_usage(runner.llm)
            scorer = fit_scorer_task(unvisited(graph), settings.verify,
                                     inputs.out_dir / "verifier", unvisited(probes))
            calibration = calibrate_task(unvisited(graph), unvisited(probes), scorer=scorer,
                                         settings=settings.verify)
            llm_out = run_llm_stages(graph, book=book, llm=runner.llm, settings=settings,
                                     submit=runner.submit, workers=runner.workers,
                                     skip_relations=skip_relations(calibration, settings))
        settled = book.settle(graph, llm_out.runs)
        verified = verify_task(unvisited(graph), unvisited(llm_out.candidates), scorer=scorer,
                               settings=settings.verify, reviewed=reviewed,
                               calibration=unvisited(calibration))
        result = rr.run_result(graph, verified)
        report = rr.run_report(book, graph=graph, llm=llm_out, scorer=scorer,
                               verified=verified, settled=settled, result=result,
                               settings=settings, wall_seconds=time.perf_counter() - start,
                               extra={**inputs.extra_report, "task runner": runner.summary()},
                               probes=probes.stats if probes else None)
        outputs = fio.write_run_outputs(
            inputs.out_dir, entities=result.entities, triples=result.triples,
            items=[it.id for it in graph.items], interactions=inputs.interactions,
            settings=settings.export, store=inputs.store, reviewed=reviewed,
            failures=settled.failures, retractions=state.retractions(),
            merges=graph.index.merges,
            probes=probe_rows(calibration) if calibration is not None else None)
        pushed = fio.push_outputs(inputs.out_dir, push=settings.push, export=settings.export)
        report = report.model_copy(update={
            "outputs": {k: str(p) for k, p in outputs.paths.items()},
            "exports": {**outputs.counts, **pushed},
            "totals": {**report.totals, "wall_seconds": round(time.perf_counter() - start, 2)}})
        pages = rr.render_report(report, book=book, settled=settled, result=result, scorer=scorer)
        fio.write_report(settings.reports_dir / book.run, report, pages)
        fio.write_report(inputs.out_dir, report, pages)
        book.finish(rr.run_summary(book, report, settled=settled,
                                   chunk_size=settings.chunk_size, llm=llm_out))
    create_markdown_artifact(markdown=pages.markdown, key="enrich-report",
                             description=f"kgenrich run {book.run}")
    return report
