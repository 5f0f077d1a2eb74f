"""Prefect wiring for the `enrich` flow: thin tasks around the stages; the flow reads the inputs,
composes the tasks and writes the exports and the run report. No business logic here."""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import logging  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from prefect import flow, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NONE  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from flows import io as fio  # noqa: E402
from kg.records import (  # noqa: E402
    Entity,
    Item,
    Mention,
    Ontology,
    SourceKind,
    StageResult,
    Triple,
    dedupe_triples,
)
from kgenrich.settings import Settings  # noqa: E402
from pipeline import assemble  # noqa: E402
from pipeline.candidates import Candidate, to_triples  # noqa: E402
from pipeline.catalog import catalog_triples, item_entities  # noqa: E402
from pipeline.complete import complete_tails, missing_relations  # noqa: E402
from pipeline.discover import discover_entities, load_nlp  # noqa: E402
from pipeline.extract import extract_relations  # noqa: E402
from pipeline.llm.base import LLM  # noqa: E402
from pipeline.llm.factory import make_llm  # noqa: E402
from pipeline.report import RunReport, build_report, render_markdown  # noqa: E402
from pipeline.resolve import EntityIndex  # noqa: E402
from pipeline.review import apply_review, review_queue  # noqa: E402
from pipeline.verify import FittedVerifier, fit_verifier, verify_triples  # noqa: E402

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
    # Verdicts from a person (JSONL, see pipeline/review.py); default: <out_dir>/review.jsonl
    review: Path | None = None
    run_name: str | None = None
    extra_report: dict[str, Any] = Field(default_factory=dict)


# ---- tasks: one stage call each. LLM tasks skip Prefect's cache: the LLM response cache already
# makes a re-run on unchanged input free, and an LLM client is not a cacheable input.


@task(name="catalog", cache_policy=NONE)
def catalog_task(
    items: list[Item], *, ontology: Ontology, index: EntityIndex, links: dict[str, str]
) -> StageResult[Triple]:
    return catalog_triples(items, ontology=ontology, index=index, item_links=links)


@task(name="discover", cache_policy=NONE, retries=1, retry_delay_seconds=5)
def discover_task(
    items: list[Item], *, llm: LLM | None, ontology: Ontology, use_spacy: bool,
    labels: dict[str, list[str]], max_per_item: int,
) -> StageResult[Mention]:
    nlp = load_nlp(labels)[0] if use_spacy else None
    return discover_entities(items, llm=llm, ontology=ontology, nlp=nlp,
                             max_per_item=max_per_item)


@task(name="extract", cache_policy=NONE, retries=1, retry_delay_seconds=5)
def extract_task(
    items: list[Item], *, llm: LLM, ontology: Ontology, max_per_item: int
) -> StageResult[Candidate]:
    return extract_relations(items, llm=llm, ontology=ontology, max_per_item=max_per_item)


@task(name="complete", cache_policy=NONE, retries=1, retry_delay_seconds=5)
def complete_task(items: list[Item], *, llm: LLM, **kwargs: Any) -> StageResult[Candidate]:
    return complete_tails(items, llm=llm, **kwargs)


@task(name="fit-verifier", cache_policy=NONE)
def fit_verifier_task(trusted: list[Triple], **kwargs: Any) -> FittedVerifier:
    return fit_verifier(trusted, **kwargs)


@task(name="verify", cache_policy=NONE)
def verify_task(
    candidates: list[Triple], *, verifier: FittedVerifier, ontology: Ontology,
    entity_types: dict[str, str], review_band: tuple[float, float],
) -> StageResult[Triple]:
    return verify_triples(
        candidates, ontology=ontology, entity_types=entity_types, knows=verifier.knows,
        score=verifier.score, probability=verifier.probability, review_band=review_band,
        verifier_name=verifier.name,
    )


def _run_name(inputs: EnrichInputs) -> str:
    return inputs.run_name or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


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

    with make_llm(settings.llm) as llm:
        d = settings.discover
        if d.use_spacy or d.use_llm:
            stages["discover"] = discover_task(
                items, llm=llm if d.use_llm else None, ontology=ontology, use_spacy=d.use_spacy,
                labels=assemble.labels_by_type(index), max_per_item=d.max_per_item)
            assemble.register_mentions(stages["discover"].kept, index=index)
        candidates: list[Triple] = []
        if settings.extract.enabled:
            stages["extract"] = extract_task(items, llm=llm, ontology=ontology,
                                             max_per_item=settings.extract.max_per_item)
            extracted, _ = to_triples(stages["extract"].kept, index=index,
                                      source=SourceKind.EXTRACTED, item_links=links)
            candidates += extracted
        c = settings.complete
        if c.enabled:
            labels = {e.id: e.label for e in index.by_id.values()}
            known = [*base, *candidates]
            gaps = missing_relations(items, triples=known, ontology=ontology,
                                     relations=c.relations, item_entity=item_entity)
            todo = [it for it in items if it.id in gaps][: c.max_items]
            stages["complete"] = complete_task(
                todo, llm=llm, ontology=ontology, gaps=gaps,
                facts=assemble.item_facts(todo, triples=known, labels=labels,
                                          item_entity=item_entity),
                labels_by_type=assemble.labels_by_type(index), samples=c.samples,
                temperature=c.temperature, max_candidates=c.max_candidates)
            completed, _ = to_triples(stages["complete"].kept, index=index,
                                      source=SourceKind.COMPLETED, item_links=links)
            candidates += completed
        usage = llm.usage()

    base_keys = {t.key for t in base}
    candidates = [t for t in dedupe_triples(candidates) if t.key not in base_keys]
    v = settings.verify
    verifier = fit_verifier_task(assemble.trusted(base), model=v.model, dim=v.dim,
                                 epochs=v.epochs, seed=v.seed, holdout=v.holdout)
    entity_types = {e.id: e.type for e in index.by_id.values()}
    stages["verify"] = verify_task(candidates, verifier=verifier, ontology=ontology,
                                   entity_types=entity_types, review_band=v.review_band)
    review_file = inputs.review or inputs.out_dir / "review.jsonl"
    reviewed = fio.read_review(review_file) if review_file.is_file() else []
    verified, review_counts = apply_review(stages["verify"].kept, rows=reviewed)
    triples = [*base, *verified]
    entities = _used_entities(index, triples)
    labels = {e.id: e.label for e in entities}

    report = build_report(
        run, stages, triples, wall_seconds=time.perf_counter() - start,
        extra={"llm model": usage_model(settings), "verifier": verifier.summary(),
               "items": len(items), "entities": len(entities),
               "llm failures": usage.failures, **review_counts, **inputs.extra_report},
    )
    outputs = fio.write_exports(
        inputs.out_dir, entities=entities, triples=triples, items=[it.id for it in items],
        interactions=inputs.interactions, settings=settings.export,
    )
    queue = review_queue(triples, labels=labels, previous={r.key: r for r in reviewed})
    outputs["review"] = fio.write_review(inputs.out_dir / "review.jsonl", queue)
    report = report.model_copy(update={"outputs": {k: str(p) for k, p in outputs.items()}})
    report = report.model_copy(update={"totals": {**report.totals,
                                                  "wall_seconds": round(time.perf_counter()
                                                                        - start, 2)}})
    markdown = render_markdown(report)
    fio.write_report(settings.reports_dir / run, report, markdown)
    fio.write_report(inputs.out_dir, report, markdown)
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
