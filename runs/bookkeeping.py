"""The run's bookkeeping rows (failures to retry, retractions) and their report section."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from kgenrich.kg.records import SourceKind, Triple


class FailureRow(BaseModel):
    """One line of `failures.jsonl`: an item a stage could not finish, to be retried."""

    item_id: str
    stage: str
    error: str
    attempts: int = 1
    run: str = ""
    kept_previous: bool = False  # an older result of the item is in this run's graph


class RetractionRow(BaseModel):
    """One line of `retractions.jsonl`: an item that left the catalog and what left with it."""

    run: str
    at: str
    item_id: str
    reason: str
    triples: list[dict[str, Any]] = Field(default_factory=list)
    records: dict[str, Any] = Field(default_factory=dict)  # stage -> the item's stored records


def removed_triples(
    triples: Iterable[Triple], *, item_ids: Iterable[str], item_entity: Callable[[str], str],
) -> dict[str, list[Triple]]:
    """Per removed item, the non-seed triples derived for it (by provenance or as head)."""
    wanted = {i: item_entity(i) for i in item_ids}
    heads = {ent: i for i, ent in wanted.items()}
    out: dict[str, list[Triple]] = {i: [] for i in wanted}
    for t in triples:
        if t.provenance.source is SourceKind.SEED:
            continue
        owner = t.provenance.item_id if t.provenance.item_id in wanted else heads.get(t.head)
        if owner is not None:
            out[owner].append(t)
    return out


def render_markdown_section(
    failures: Sequence[FailureRow], retractions: Sequence[RetractionRow], *, limit: int = 50
) -> str:
    """Report sections for the failed items (to retry) and this run's retractions."""
    out = ["", "## Failed items (retried next run)", ""]
    if not failures:
        out.append("None.")
    else:
        out += ["| item | stage | attempts | previous result kept | error |",
                "|---|---|---:|---|---|"]
        for f in failures[:limit]:
            err = f.error.replace("|", "\\|").replace("\n", " ")[:160]
            out.append(f"| {f.item_id} | {f.stage} | {f.attempts} | "
                       f"{'yes' if f.kept_previous else 'no'} | {err} |")
        if len(failures) > limit:
            out.append(f"\n... and {len(failures) - limit} more in `failures.jsonl`.")
    out += ["", "## Retracted items (left the catalog)", ""]
    if not retractions:
        out.append("None.")
    else:
        out += ["| item | triples retracted | reason |", "|---|---:|---|"]
        out += [f"| {r.item_id} | {len(r.triples)} | {r.reason} |" for r in retractions[:limit]]
    return "\n".join(out) + "\n"
