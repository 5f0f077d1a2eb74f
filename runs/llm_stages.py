"""The three LLM stages over a catalog, in order: discovery grows the entity index, extraction
and completion propose candidate triples. Each stage runs through the engine, so only items
whose fingerprint changed are asked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kgenrich.kg.records import Item, Mention, SourceKind, StageResult, Triple, dedupe_triples
from kgenrich.pipeline import assemble, coref, coref_llm
from kgenrich.pipeline.candidates import to_triples
from kgenrich.pipeline.complete import labels_for_prompts, missing_relations
from kgenrich.pipeline.complete_choice import choice_relations, rank_options
from kgenrich.pipeline.llm.base import LLM, UsageTotals
from kgenrich.runs.book import RunBook, enabled_stages
from kgenrich.runs.engine import ChunkFuture, StageRun, chunk_window, run_stage
from kgenrich.runs.graph import BaseGraph
from kgenrich.runs.plan import plan_completion
from kgenrich.settings import Settings

#: (stage, chunk, keyword arguments) -> a future of ``runs.chunks.CHUNK_JOBS[stage](chunk,
#: **kwargs)``. Flows submit a Prefect task; tests and benchmarks a thread pool's job.
StageSubmit = Callable[[str, list[Item], dict[str, Any]], ChunkFuture]


@dataclass
class LLMStages:
    """What the LLM stages produced: per-stage runs and results, and the new candidates."""

    runs: dict[str, StageRun]
    results: dict[str, StageResult[Any]]
    candidates: list[Triple]  # deduplicated, none already in the base graph
    usage: UsageTotals
    #: relations completion did not ask because no answer of them could be accepted
    skipped_relations: frozenset[str] = frozenset()


def run_llm_stages(
    graph: BaseGraph, *, book: RunBook, llm: LLM, settings: Settings, submit: StageSubmit,
    workers: int, skip_relations: frozenset[str] = frozenset(),
) -> LLMStages:
    """Discovery, extraction and completion (those enabled), each over the whole catalog;
    completion leaves out ``skip_relations`` (those the calibration probes showed can never be
    accepted, see ``complete.skip_unreachable``).
    `workers`: processes with a client of their own (1 for the thread runner); each keeps
    `llm.concurrency` requests in flight, so that many more chunks are kept in flight, and at
    least two per worker."""
    d = settings.discover
    enabled = enabled_stages(settings)
    runs: dict[str, StageRun] = {}
    common: dict[str, Any] = {
        "state": book.state, "run": book.run, "items": graph.items,
        "chunk_size": settings.chunk_size,
        # at least two chunks per worker process: its next one is there when one finishes
        "window": max(chunk_window(settings.llm.concurrency * workers, settings.chunk_size),
                      2 * workers),
    }

    def stage(name: str, kwargs: dict[str, Any], **extra: Any) -> StageResult[Any]:
        runs[name] = run_stage(**common, stage=name, wanted=book.wanted(name),
                               submit=lambda chunk: submit(name, chunk, kwargs), **extra)
        return runs[name].result

    results: dict[str, StageResult[Any]] = {}
    if graph.index.resolver is not None:  # ambiguous pairs from here on may ask the LLM
        graph.index.resolver.llm = llm
    if "discover" in enabled:
        results["discover"] = stage("discover", {
            "llm": llm if d.use_llm else None, "ontology": graph.ontology,
            "use_spacy": d.use_spacy, "labels": assemble.labels_by_type(graph.index),
            "max_per_item": d.max_per_item, "context_tokens": settings.llm.context_window(),
            "max_chunks": d.max_chunks})
        assemble.register_mentions(results["discover"].kept, index=graph.index)
    candidates: list[Triple] = []
    if "extract" in enabled:
        results |= _extract(graph, runs=runs, discovered=results.get("discover"), llm=llm,
                            settings=settings, submit=submit, common=common, book=book)
        candidates += to_triples(results["extract"].kept, index=graph.index,
                                 source=SourceKind.EXTRACTED, item_links=graph.links)[0]
    if "complete" in enabled:
        results["complete"] = _complete(graph, runs=runs, known=[*graph.base, *candidates],
                                        llm=llm, settings=settings, submit=submit, common=common,
                                        book=book, skip=skip_relations)
        candidates += to_triples(results["complete"].kept, index=graph.index,
                                 source=SourceKind.COMPLETED, item_links=graph.links)[0]
    base_keys = {t.key for t in graph.base}
    fresh = [t for t in dedupe_triples(candidates) if t.key not in base_keys]
    return LLMStages(runs=runs, results=results, candidates=fresh, usage=llm.usage(),
                     skipped_relations=skip_relations)


def _extract(
    graph: BaseGraph, *, runs: dict[str, StageRun], discovered: StageResult[Any] | None,
    llm: LLM, settings: Settings, submit: StageSubmit, common: dict[str, Any], book: RunBook,
) -> dict[str, StageResult[Any]]:
    """Extraction, each chunk with its items' person mentions for coreference (discovery's and
    the catalog's). With ``coref = "llm"`` the coreference requests and rejections are a
    "coref" line of their own in the report (the client counts its calls under that stage)."""
    x = settings.extract
    mentions: dict[str, list[Mention]] = {}
    if x.coref != "off":
        found: dict[str, list[Mention]] = {}
        for m in discovered.kept if discovered is not None else ():
            found.setdefault(m.item_id, []).append(m)
        mentions = {it.id: coref.text_mentions(it.id, mentions=found.get(it.id, ()),
                                               attributes=it.attributes,
                                               ontology=graph.ontology)
                    for it in graph.items}

    def submit_chunk(chunk: list[Item]) -> ChunkFuture:
        return submit("extract", chunk, {
            "llm": llm, "ontology": graph.ontology, "max_per_item": x.max_per_item,
            "context_tokens": settings.llm.context_window(), "max_chunks": x.max_chunks,
            "coref": x.coref, "mentions": {it.id: mentions.get(it.id, []) for it in chunk}})

    runs["extract"] = run_stage(**common, stage="extract", wanted=book.wanted("extract"),
                                submit=submit_chunk)
    result = runs["extract"].result
    if x.coref != "llm":
        return {"extract": result}
    own = tuple(r for r in result.rejected if r.stage == coref_llm.STAGE)
    return {"extract": result.model_copy(update={"rejected": tuple(
                r for r in result.rejected if r.stage != coref_llm.STAGE)}),
            coref_llm.STAGE: StageResult[Any](rejected=own)}


def _complete(
    graph: BaseGraph, *, runs: dict[str, StageRun], known: list[Triple], llm: LLM,
    settings: Settings, submit: StageSubmit, common: dict[str, Any], book: RunBook,
    skip: frozenset[str],
) -> StageResult[Any]:
    c = settings.complete
    gaps = missing_relations(graph.items, triples=known, ontology=graph.ontology,
                             relations=c.relations, item_entity=graph.item_entity)
    if skip:
        gaps = {i: kept for i, g in gaps.items() if (kept := [r for r in g if r.name not in skip])}
    upstream = {i: e for s in ("discover", "extract") if s in runs
                for i, e in runs[s].failed.items()}
    facts = assemble.item_facts(graph.items, triples=known, labels=graph.labels(),
                                item_entity=graph.item_entity)
    by_type = labels_for_prompts(assemble.labels_by_type(graph.index), ontology=graph.ontology,
                                 max_candidates=c.max_candidates)
    # multiple-choice candidates come from the trusted graph, ranked once for the whole catalog
    options = rank_options(graph.items, gaps=gaps, triples=graph.base, labels=graph.labels(),
                           item_entity=graph.item_entity, size=c.choice_size,
                           relations=choice_relations(graph.ontology, modes=c.modes,
                                                      default=c.open_mode),
                           require_evidence=c.choice_needs_evidence)

    def submit_chunk(chunk: list[Item]) -> ChunkFuture:
        # only this chunk's share: Prefect walks every task parameter on submit
        return submit("complete", chunk, {
            "llm": llm, "ontology": graph.ontology,
            "gaps": {it.id: gaps[it.id] for it in chunk if it.id in gaps},
            "facts": {it.id: facts[it.id] for it in chunk},
            "labels_by_type": by_type, "samples": c.samples, "temperature": c.temperature,
            "max_candidates": c.max_candidates, "per_item": c.per_item,
            "options": {it.id: options[it.id] for it in chunk if it.id in options},
            "picks": c.choice_picks, "top_logprobs": c.choice_logprobs})

    runs["complete"] = run_stage(
        **common, stage="complete", wanted=book.wanted("complete"), submit=submit_chunk,
        plan=lambda todo: plan_completion(todo, gaps=gaps, upstream_failed=upstream,
                                          max_items=c.max_items, only=c.items))
    return runs["complete"].result
