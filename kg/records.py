"""Typed, frozen records that flow through every stage: items, entities, the ontology and
triples with their provenance. Stages take and return these, never bare tuples."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceKind(StrEnum):
    """Where a triple came from."""

    SEED = "seed"  # the user's seed KG
    CATALOG = "catalog"  # an attribute column of the catalog
    EXTRACTED = "extracted"  # LLM relation extraction from item text, with an evidence span
    COMPLETED = "completed"  # LLM tail completion (knowledge, not text)


TRUSTED_SOURCES = frozenset({SourceKind.SEED, SourceKind.CATALOG})


class Decision(StrEnum):
    """The verification outcome of a triple."""

    TRUSTED = "trusted"  # seed or catalog: not verified, taken as given
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REVIEW = "review"  # uncertain band: a person should decide
    UNVERIFIED_NEW_ENTITY = "unverified_new_entity"  # the KGE never saw one of its entities
    PENDING = "pending"  # not verified yet


class Item(_Frozen):
    """One catalog row. `text` holds free-text fields; `attributes` maps relation -> values."""

    id: str
    title: str
    text: Mapping[str, str] = Field(default_factory=dict)
    attributes: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)

    def full_text(self) -> str:
        """Title and every free-text field, the text evidence spans must occur in."""
        return "\n".join([self.title, *[v for v in self.text.values() if v]])


class Entity(_Frozen):
    """A node of the graph. Items are entities of the ontology's item type too; an item entity
    is labelled with the catalog title and keeps the catalog's other fields in `text` and
    `attributes` (as `Item` holds them), so no export loses what the catalog said."""

    id: str
    label: str
    type: str
    aliases: tuple[str, ...] = ()
    source: SourceKind = SourceKind.CATALOG
    text: Mapping[str, str] = Field(default_factory=dict)
    attributes: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)


class Relation(_Frozen):
    """A relation of the ontology with its domain and range types."""

    name: str
    domain: str
    range: str
    description: str = ""
    # At most one tail per head (e.g. release year); completion then asks for one answer.
    functional: bool = False


class Ontology(_Frozen):
    """Entity types and relations. Everything an LLM proposes must fit inside it."""

    item_type: str = "Item"
    types: tuple[str, ...]
    relations: tuple[Relation, ...]
    # Types whose members are a fixed vocabulary (genres, languages): completion answers must be
    # known entities. Open types (people) accept new names, which are then verified.
    closed_types: tuple[str, ...] = ()

    def relation(self, name: str) -> Relation | None:
        for rel in self.relations:
            if rel.name == name:
                return rel
        return None

    @property
    def relation_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.relations)


class Provenance(_Frozen):
    """Where a triple came from and what verification decided about it."""

    source: SourceKind
    item_id: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    evidence: str | None = None
    # Named scores: "kge" (raw), "kge_probability", "agreement", "confidence", ...
    scores: Mapping[str, float] = Field(default_factory=dict)
    decision: Decision = Decision.PENDING
    reason: str = ""
    accepted_by: str | None = None  # "verifier", "review:<name>", "seed", ...


class Triple(_Frozen):
    """A (head, relation, tail) fact between entity ids, with its provenance."""

    head: str
    relation: str
    tail: str
    provenance: Provenance

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.head, self.relation, self.tail)

    def with_provenance(self, **changes: object) -> Triple:
        return self.model_copy(update={"provenance": self.provenance.model_copy(update=changes)})


class Rejection(_Frozen):
    """Something a stage did not keep, and why. Rejections reach the run report."""

    stage: str
    reason: str
    item_id: str | None = None
    detail: str = ""


class StageStats(_Frozen):
    """Accounting for one stage run."""

    llm_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


T = TypeVar("T")


class StageResult(BaseModel, Generic[T]):
    """What a stage kept and what it rejected, with reasons, plus its accounting."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    kept: tuple[T, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    stats: StageStats = Field(default_factory=StageStats)

    def rejection_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.rejected:
            counts[r.reason] = counts.get(r.reason, 0) + 1
        return counts


def dedupe_triples(triples: Iterable[Triple]) -> list[Triple]:
    """Keep the first triple per (head, relation, tail); trusted sources win over LLM ones."""
    best: dict[tuple[str, str, str], Triple] = {}
    for t in triples:
        old = best.get(t.key)
        if old is None or (
            t.provenance.source in TRUSTED_SOURCES
            and old.provenance.source not in TRUSTED_SOURCES
        ):
            best[t.key] = t
    return list(best.values())


class Mention(_Frozen):
    """An entity mention found in an item's text, before resolution."""

    item_id: str
    label: str
    type: str
    found_by: str  # "spacy" | "llm:<model>"
    evidence: str = ""
