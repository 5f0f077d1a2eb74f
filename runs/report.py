"""The enrich run's report: every stage's accounting, the final graph's counts and the run's
details, as one ``RunReport`` plus its Markdown and its self-contained HTML page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kgenrich.kg.records import Entity, StageResult, StageStats, Triple
from kgenrich.pipeline.llm.base import UsageTotals
from kgenrich.pipeline.report import RunReport, build_report, render_markdown
from kgenrich.pipeline.report_html import render_html
from kgenrich.pipeline.verify import ReviewedVerification
from kgenrich.runs.book import RunBook, Settled
from kgenrich.runs.bookkeeping import render_markdown_section
from kgenrich.runs.graph import BaseGraph
from kgenrich.runs.health import HEALTH_KEY, run_health
from kgenrich.runs.llm_stages import LLMStages
from kgenrich.runs.probes import STAGE as PROBES_STAGE
from kgenrich.settings import Settings
from kgenrich.verification.scorers import Scorer


@dataclass
class RunResult:
    """The enriched graph of a run: the base graph plus the verified candidates."""

    entities: list[Entity]
    triples: list[Triple]

    @property
    def labels(self) -> dict[str, str]:
        return {e.id: e.label for e in self.entities}


def run_result(graph: BaseGraph, verified: ReviewedVerification) -> RunResult:
    return RunResult(entities=graph.entities(), triples=[*graph.base, *verified.triples])


def run_report(
    book: RunBook, *, graph: BaseGraph, llm: LLMStages, scorer: Scorer,
    verified: ReviewedVerification, settled: Settled, result: RunResult, settings: Settings,
    wall_seconds: float, extra: Mapping[str, Any], probes: StageStats | None = None,
) -> RunReport:
    # Fitting the verifier (KGE training) is its own row: it is often the longest step after
    # the LLM, and folding it into nothing made the report's seconds add up to far less than
    # the wall time.
    fit = StageResult[Any](stats=StageStats(seconds=float(scorer.metrics.get("seconds", 0.0))))
    stages: dict[str, StageResult[Any]] = {**graph.stages, **llm.results}
    if probes is not None:
        stages[PROBES_STAGE] = StageResult[Any](stats=probes)
    stages |= {"fit verifier": fit, "verify": verified.stage}
    health = run_health(usage=llm.usage, runs=llm.runs, failures=settled.failures,
                        items=len(graph.items))
    report = build_report(
        book.run, stages, result.triples, wall_seconds=wall_seconds,
        extra={"llm model": f"{settings.llm.backend}:{settings.llm.model}",
               "verifier": scorer.summary(), "confidence combiner": verified.combiner_note,
               "calibration": {rel: c.summary()
                               for rel, c in verified.combiner.calibration.items()},
               "relations not asked": sorted(llm.skipped_relations),
               "items": len(graph.items), "entities": len(result.entities),
               "llm failures": llm.usage.failures,
               "incremental": book.incremental_summary(llm.runs, settled=settled,
                                                       chunk_size=settings.chunk_size),
               "failed items": len(settled.failed_items),
               "retracted items": [r.item_id for r in book.retracted],
               HEALTH_KEY: health.as_dict(),
               **dict(verified.review_counts), **extra})
    return with_client_usage(report, llm.usage)


def with_client_usage(report: RunReport, usage: UsageTotals) -> RunReport:
    """`report` with each LLM stage's calls, cache hits and tokens as the client counted them.

    The client sees every request (retries, repairs, chunks that crashed or were retried by the
    task runner); per-answer stage stats miss a chunk whose task failed."""
    lines = []
    for line in report.stages:
        seen = usage.by_stage.get(line.stage)
        if seen:
            line = line.model_copy(update={
                "llm_calls": seen["calls"], "cache_hits": seen["cache_hits"],
                "prompt_tokens": seen["prompt_tokens"],
                "completion_tokens": seen["completion_tokens"]})
        lines.append(line)
    totals = {**report.totals, **{key: sum(getattr(x, key) for x in lines) for key in (
        "llm_calls", "cache_hits", "prompt_tokens", "completion_tokens")}}
    return report.model_copy(update={"stages": lines, "totals": totals})


@dataclass(frozen=True)
class RenderedReport:
    """The run report as the files beside ``report.json`` hold it."""

    markdown: str
    html: str


def report_markdown(report: RunReport, *, book: RunBook, settled: Settled) -> str:
    return render_markdown(report) + render_markdown_section(settled.failures, book.retracted)


def render_report(report: RunReport, *, book: RunBook, settled: Settled, result: RunResult,
                  scorer: Scorer) -> RenderedReport:
    """``report`` as Markdown and as HTML (charts of ``result``'s triples and of ``scorer``'s
    holdout, a sample of accepted and review triples with their labels and evidence)."""
    return RenderedReport(
        markdown=report_markdown(report, book=book, settled=settled),
        html=render_html(report, triples=result.triples, labels=result.labels,
                         holdout=scorer.holdout))


def run_summary(book: RunBook, report: RunReport, *, settled: Settled,
                chunk_size: int, llm: LLMStages) -> dict[str, Any]:
    """What the state store's run log keeps of this run."""
    return {**book.incremental_summary(llm.runs, settled=settled, chunk_size=chunk_size),
            "failed items": len(settled.failed_items), "retracted": len(book.retracted),
            "llm_calls": report.totals["llm_calls"]}
