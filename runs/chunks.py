"""One LLM stage on one chunk of items, as plain functions: what a flow's task (or a test's
thread pool) runs. Each wraps the client in a FailureTracker, so the engine knows which items
of the chunk must be asked again next run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kgenrich.kg.records import Item, Mention, Ontology
from kgenrich.pipeline.complete_choice import complete_gaps
from kgenrich.pipeline.coref_llm import resolve_coreference
from kgenrich.pipeline.discover import discover_entities, load_nlp
from kgenrich.pipeline.extract import extract_relations
from kgenrich.pipeline.llm.base import LLM
from kgenrich.runs.outcomes import ChunkOutcome, FailureTracker, split_outcome


def discover_chunk(
    items: list[Item], *, llm: LLM | None, ontology: Ontology, use_spacy: bool,
    labels: Mapping[str, Sequence[str]], max_per_item: int, context_tokens: int, max_chunks: int,
) -> ChunkOutcome:
    nlp = load_nlp(labels)[0] if use_spacy else None
    tracked = FailureTracker(llm) if llm is not None else None
    result = discover_entities(items, llm=tracked, ontology=ontology, nlp=nlp,
                               max_per_item=max_per_item, context_tokens=context_tokens,
                               max_chunks=max_chunks)
    return split_outcome("discover", [it.id for it in items], result,
                         tracked.failures if tracked else {})


def extract_chunk(
    items: list[Item], *, llm: LLM, ontology: Ontology, max_per_item: int, context_tokens: int,
    max_chunks: int, coref: str, mentions: Mapping[str, Sequence[Mention]],
) -> ChunkOutcome:
    """Coreference (`coref` names the resolver; `mentions` are each item's person mentions),
    then extraction. The coreference LLM's own failures fall back to the rules and are
    rejections, not failures to retry: it goes to `llm` itself, not through the tracker."""
    found = resolve_coreference(items, mode=coref, llm=llm, mentions=mentions,
                                ontology=ontology, context_tokens=context_tokens,
                                max_chunks=max_chunks)
    tracked = FailureTracker(llm)
    result = extract_relations(items, llm=tracked, ontology=ontology, max_per_item=max_per_item,
                               context_tokens=context_tokens, max_chunks=max_chunks,
                               clusters=found.clusters)
    result = result.model_copy(update={"rejected": (*found.rejected, *result.rejected)})
    return split_outcome("extract", [it.id for it in items], result, tracked.failures)


def complete_chunk(items: list[Item], *, llm: LLM, **kwargs: Any) -> ChunkOutcome:
    tracked = FailureTracker(llm)
    # free-form per item or per relation, and multiple choice where `options` has candidates
    result = complete_gaps(items, llm=tracked, **kwargs)
    return split_outcome("complete", [it.id for it in items], result, tracked.failures)


#: Stage name -> the function that runs it on one chunk; flows wrap each in a task.
CHUNK_JOBS: Mapping[str, Callable[..., ChunkOutcome]] = {
    "discover": discover_chunk,
    "extract": extract_chunk,
    "complete": complete_chunk,
}
