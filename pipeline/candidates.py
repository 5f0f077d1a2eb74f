"""A candidate fact from an LLM stage, before its tail is resolved to an entity id.

Extraction and completion both produce candidates; `to_triples` resolves tails and turns them
into `Triple` records with provenance, ready for verification.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from kgenrich.kg.ids import item_entity_id
from kgenrich.kg.records import Decision, Provenance, SourceKind, Triple
from kgenrich.pipeline.resolve import EntityIndex, resolve


class Candidate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: str
    relation: str
    tail_label: str
    tail_type: str
    evidence: str | None = None
    model: str
    prompt_version: str
    agreement: float  # share of the k samples that gave this tail
    samples: int
    # multiple-choice completion (pipeline/complete_choice.py): the tail's place among the
    # options offered (1 = the graph's best) and, where the server gave log-probabilities, the
    # model's probability of it among them
    choice_rank: int | None = None
    choice_probability: float | None = None
    # extraction with coreference: other names the text gave the tail ("Nolan" for the
    # canonical "Christopher Nolan"), recorded on the tail entity's aliases
    tail_aliases: tuple[str, ...] = ()


def to_triples(
    candidates: Sequence[Candidate],
    *,
    index: EntityIndex,
    source: SourceKind,
    item_links: Mapping[str, str] | None = None,
) -> tuple[list[Triple], set[str]]:
    """Resolve tails (linking to known entities, minting new ones), adding each candidate's
    `tail_aliases` to its tail entity; returns the triples and the ids of entities minted
    here."""
    links = item_links or {}
    triples: list[Triple] = []
    minted: set[str] = set()
    for c in candidates:
        res = resolve(c.tail_label, c.tail_type, index=index, source=source)
        if res.is_new:
            minted.add(res.entity.id)
        if c.tail_aliases:
            index.add_aliases(res.entity.id, c.tail_aliases)
        triples.append(
            Triple(
                head=links.get(c.item_id, item_entity_id(c.item_id)),
                relation=c.relation,
                tail=res.entity.id,
                provenance=Provenance(
                    source=source,
                    item_id=c.item_id,
                    model=c.model,
                    prompt_version=c.prompt_version,
                    evidence=c.evidence,
                    scores=_scores(c),
                    decision=Decision.PENDING,
                ),
            )
        )
    return triples, minted


def _scores(c: Candidate) -> dict[str, float]:
    scores = {"agreement": c.agreement, "samples": float(c.samples)}
    if c.choice_rank is not None:
        scores["choice_rank"] = float(c.choice_rank)
    if c.choice_probability is not None:
        scores["choice_probability"] = c.choice_probability
    return scores
