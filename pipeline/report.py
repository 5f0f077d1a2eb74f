"""The run report: per stage what was kept and rejected (with reasons), tokens and seconds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from kgenrich.kg.records import StageResult, Triple


class StageLine(BaseModel):
    stage: str
    kept: int
    rejected: int
    reasons: dict[str, int] = Field(default_factory=dict)
    llm_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


class RunReport(BaseModel):
    run: str
    stages: list[StageLine]
    decisions: dict[str, int]
    sources: dict[str, int]
    totals: dict[str, float]
    outputs: dict[str, str] = Field(default_factory=dict)
    # Per recommender format, what its writer wrote and what it dropped for its consumer
    # (items without a triple, their interactions).
    exports: dict[str, dict[str, int]] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)


def stage_line(stage: str, result: StageResult[Any]) -> StageLine:
    s = result.stats
    return StageLine(
        stage=stage, kept=len(result.kept), rejected=len(result.rejected),
        reasons=dict(sorted(result.rejection_counts().items(), key=lambda kv: -kv[1])),
        llm_calls=s.llm_calls, cache_hits=s.cache_hits, prompt_tokens=s.prompt_tokens,
        completion_tokens=s.completion_tokens, seconds=round(s.seconds, 3),
    )


def build_report(
    run: str,
    stages: Mapping[str, StageResult[Any]],
    triples: Sequence[Triple],
    *,
    wall_seconds: float,
    extra: Mapping[str, Any] | None = None,
) -> RunReport:
    lines = [stage_line(name, res) for name, res in stages.items()]
    decisions = Counter(t.provenance.decision.value for t in triples)
    sources = Counter(t.provenance.source.value for t in triples)
    totals = {
        "llm_calls": sum(x.llm_calls for x in lines),
        "cache_hits": sum(x.cache_hits for x in lines),
        "prompt_tokens": sum(x.prompt_tokens for x in lines),
        "completion_tokens": sum(x.completion_tokens for x in lines),
        "triples": len(triples),
        "wall_seconds": round(wall_seconds, 2),
    }
    return RunReport(run=run, stages=lines, decisions=dict(decisions), sources=dict(sources),
                     totals=totals, extra=dict(extra or {}))


def render_markdown(report: RunReport) -> str:
    out = [f"# kgenrich run `{report.run}`", ""]
    t = report.totals
    out.append(
        f"Wall time {t['wall_seconds']} s; {int(t['triples'])} triples; LLM calls "
        f"{int(t['llm_calls'])} (+{int(t['cache_hits'])} from cache); tokens "
        f"{int(t['prompt_tokens'])} prompt / {int(t['completion_tokens'])} completion."
    )
    out += ["", "| stage | kept | rejected | calls | cached | prompt tok | completion tok | s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in report.stages:
        out.append(f"| {s.stage} | {s.kept} | {s.rejected} | {s.llm_calls} | {s.cache_hits} | "
                   f"{s.prompt_tokens} | {s.completion_tokens} | {s.seconds} |")
    out += ["", "## Rejections by reason", ""]
    for s in report.stages:
        for reason, n in s.reasons.items():
            out.append(f"- {s.stage}: {reason}: {n}")
    out += ["", "## Triples", "", "| source | count |", "|---|---:|"]
    out += [f"| {k} | {v} |" for k, v in sorted(report.sources.items())]
    out += ["", "| decision | count |", "|---|---:|"]
    out += [f"| {k} | {v} |" for k, v in sorted(report.decisions.items())]
    if report.extra:
        out += ["", "## Details", ""]
        for k, v in report.extra.items():
            out.append(f"- **{k}**: {v}")
    if report.exports:
        out += ["", "## Exports", ""]
        for name, counts in report.exports.items():
            out.append(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        dropped = {name: (c.get("dropped_items", 0), c.get("dropped_interactions", 0))
                   for name, c in report.exports.items()}
        for name, (n_items, n_inter) in dropped.items():
            if n_items or n_inter:
                out.append(f"- {name} dropped {n_items} items without a triple and "
                           f"{n_inter} interactions (items its consumer cannot link)")
    if report.outputs:
        out += ["", "## Outputs", ""]
        out += [f"- {k}: `{v}`" for k, v in report.outputs.items()]
    return "\n".join(out) + "\n"
