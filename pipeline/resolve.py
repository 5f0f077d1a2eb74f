"""Entity resolution: link labels to known entities of the same type, and mint stable ids for
new ones. Entities of different types are never merged.

Without a `Resolver` an index links exact labels and aliases only. With one, a label that is
not exact is matched by normalised keys, name parts, fuzzy labels and embeddings, and the LLM
for ambiguous pairs (`resolve_match.decide`); `EntityIndex.build` also merges same-type entities
with distinct ids by exact, normalised and name-part evidence, unless both are catalog items or
their facts disagree (`homonyms`). Every
link of a non-identical label, and every pair kept apart, is a `MergeRecord` in `merges`; a
merge a person rejected in the review file (`Resolver.rejected`) is not made again."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from kgenrich.kg.ids import mint_entity_id, normalize_label
from kgenrich.kg.records import Entity, SourceKind, Triple
from kgenrich.kg.review import ReviewRow
from kgenrich.pipeline.homonyms import Facts, disagreement
from kgenrich.pipeline.llm.base import LLM
from kgenrich.pipeline.merge_log import MergeRecord, rejected_merges
from kgenrich.pipeline.resolve_llm import ask_same
from kgenrich.pipeline.resolve_match import Ambiguous, LabelTable, Match, MatchScores, decide
from kgenrich.settings import ResolveSettings
from kgenrich.verification.fallback import Encoder

logger = logging.getLogger(__name__)

ITEM_PREFIX = "item/"


@dataclass
class Resolver:
    """How an index links labels that are not exact: the settings, the merges a person rejected
    ((merged id, into) pairs), and the encoder and LLM (made or attached when first needed)."""

    settings: ResolveSettings
    rejected: frozenset[tuple[str, str]] = frozenset()
    encoder: Encoder | None = None
    llm: LLM | None = None

    @classmethod
    def from_review(cls, settings: ResolveSettings, reviewed: Iterable[ReviewRow]) -> Resolver:
        """The resolver of a run: `settings` and the merges rejected in the review file."""
        return cls(settings=settings, rejected=rejected_merges(reviewed))

    def __getstate__(self) -> dict[str, object]:
        # The encoder (a torch model) and the LLM client (thread locks) stay in this process;
        # a copy sent to a worker process loads its own encoder and judges no ambiguous pair.
        return {**self.__dict__, "encoder": None, "llm": None}

    def text_encoder(self) -> Encoder | None:
        """The embedding encoder if `embed` is on (loaded once, on first use)."""
        if not (self.settings.enabled and self.settings.embed):
            return None
        if self.encoder is None:
            from kgenrich.verification.fallback import TextEncoder  # local: loads torch

            self.encoder = TextEncoder()
        return self.encoder


@dataclass
class EntityIndex:
    """Lookup of known entities by (type, normalized label or alias). Grows as entities mint."""

    by_id: dict[str, Entity] = field(default_factory=dict)
    resolver: Resolver | None = None
    merges: list[MergeRecord] = field(default_factory=list)
    #: merged entity id -> the id of the entity it is now part of
    redirects: dict[str, str] = field(default_factory=dict)
    facts: Facts = field(default_factory=dict)
    _labels: dict[tuple[str, str], str] = field(default_factory=dict)
    _aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    _tables: dict[str, LabelTable] = field(default_factory=dict)

    @classmethod
    def build(cls, entities: Iterable[Entity], *, resolver: Resolver | None = None,
              facts: Facts | None = None) -> EntityIndex:
        """An index of `entities`; with a `resolver`, same-type near-duplicates merge as they
        are added (`merge_entity`), `facts` deciding which homonyms stay apart."""
        index = cls(resolver=resolver, facts={k: {r: set(v) for r, v in f.items()}
                                              for k, f in (facts or {}).items()})
        for e in entities:
            if resolver is None or not resolver.settings.enabled:
                index.add(e)
            else:
                index.merge_entity(e)
        return index

    def add(self, entity: Entity) -> None:
        """Register an entity; the first entity with a label keeps it (stable across runs)."""
        if entity.id in self.by_id:
            return
        self.by_id[entity.id] = entity
        self._register_names(entity.id, entity.type, (entity.label, *entity.aliases),
                             label_of=entity.label)

    def _register_names(self, eid: str, type_: str, names: Iterable[str], *,
                        label_of: str | None = None) -> None:
        table = self._tables.setdefault(type_, LabelTable())
        for name in names:
            key = (type_, normalize_label(name))
            if name == label_of:
                self._labels.setdefault(key, eid)
            else:
                self._aliases.setdefault(key, eid)
            table.add(eid, name)

    def canonical(self, entity_id: str) -> str:
        """The id `entity_id` resolves to now (itself unless it was merged into another)."""
        seen = 0
        while entity_id in self.redirects and seen < 100:
            entity_id, seen = self.redirects[entity_id], seen + 1
        return entity_id

    def lookup(self, label: str, type_: str) -> Entity | None:
        key = (type_, normalize_label(label))
        eid = self._labels.get(key) or self._aliases.get(key)
        return self.by_id[self.canonical(eid)] if eid else None

    def labels_of_type(self, type_: str) -> list[str]:
        return sorted(e.label for e in self.by_id.values() if e.type == type_)

    def __len__(self) -> int:
        return len(self.by_id)

    def rewrite(self, triples: Iterable[Triple]) -> list[Triple]:
        """`triples` with merged entity ids replaced by the id they resolve to now."""
        if not self.redirects:
            return list(triples)
        out = []
        for t in triples:
            head, tail = self.canonical(t.head), self.canonical(t.tail)
            out.append(t if (head, tail) == (t.head, t.tail)
                       else t.model_copy(update={"head": head, "tail": tail}))
        return out

    # -- resolution with a resolver --------------------------------------------------------

    def link(self, label: str, type_: str, *, source: SourceKind) -> Entity | None:
        """The entity a non-exact `label` of `type_` names, per the resolver, or None; a link
        adds `label` to the entity's aliases and is logged in `merges`."""
        minted = mint_entity_id(type_, label)
        match = self.match(label, type_, merged_id=minted)
        if match is None:
            return None
        target = self.by_id[match.entity_id]
        self._add_aliases(target.id, (label,))
        self.merges.append(MergeRecord(
            kind="label", outcome="merged", type=type_, label=label.strip(), merged_id=minted,
            into=target.id, into_label=target.label, reason=match.reason,
            score=round(match.score, 4), source=source.value))
        return self.by_id[target.id]

    def scores(self, label: str, type_: str, *, merged_id: str | None = None,
               exclude: Callable[[str], bool] | None = None,
               keyed_only: bool = False) -> MatchScores:
        """Every matching signal for `label` among `type_`'s entities (no side effects); the
        pairs a person rejected for `merged_id` (default: the id `label` would mint) are out."""
        table = self._tables.get(type_)
        if table is None:
            return MatchScores()
        r = self.resolver
        mid = merged_id if merged_id is not None else mint_entity_id(type_, label)
        rejected = {into for m, into in r.rejected if m == mid} if r is not None else set()
        return table.scores(
            label, encoder=r.text_encoder() if r is not None and not keyed_only else None,
            canon=self.canonical, keyed_only=keyed_only,
            skip=lambda e: e in rejected or e == mid or bool(exclude and exclude(e)))

    def match(self, label: str, type_: str, *, merged_id: str | None = None,
              settings: ResolveSettings | None = None, scores: MatchScores | None = None,
              exclude: Callable[[str], bool] | None = None,
              keyed_only: bool = False) -> Match | None:
        """The entity `label` of `type_` links to and why, without registering anything: an
        exact label or alias, else (with a resolver) `decide` over `scores`, the LLM judging
        an ambiguous pair when `use_llm` is on and a client is attached. `settings` overrides
        the resolver's (a benchmark sweeps them); `scores` re-uses `EntityIndex.scores`."""
        r = self.resolver
        mid = merged_id if merged_id is not None else mint_entity_id(type_, label)
        found_exact = self.lookup(label, type_)
        if found_exact is not None and found_exact.id != mid and (
                r is None or (mid, found_exact.id) not in r.rejected) and not (
                exclude and exclude(found_exact.id)):
            return Match(found_exact.id, "exact", 1.0)
        if r is None or not r.settings.enabled:
            return None
        s = settings or r.settings
        found = decide(scores if scores is not None
                       else self.scores(label, type_, merged_id=mid, exclude=exclude,
                                        keyed_only=keyed_only), settings=s)
        if isinstance(found, Ambiguous):
            if not (s.use_llm and r.llm is not None):
                return None
            other = self.by_id[self.canonical(found.entity_id)]
            if ask_same(r.llm, label, other.label, type_=type_) is not True:
                return None
            found = Match(found.entity_id, "llm", found.score)
        if found is None:
            return None
        return Match(self.canonical(found.entity_id), found.reason, found.score)

    def merge_entity(self, entity: Entity) -> None:
        """Add `entity`, merged into a same-type entity it near-duplicates unless both are
        catalog items, their facts disagree, or a person rejected the pair. A catalog item
        absorbs the entity it merges with (its id is the item's); otherwise the first stays."""
        if entity.id in self.by_id or entity.id in self.redirects:
            return

        def apart(other_id: str) -> str | None:
            if entity.id.startswith(ITEM_PREFIX) and other_id.startswith(ITEM_PREFIX):
                return "both catalog items"
            conflict = disagreement(self.facts.get(entity.id), self.facts.get(other_id))
            return f"facts disagree: {conflict}" if conflict else None

        # Keyed evidence only: a seed of 100k entities must index in linear time; fuzzy and
        # embedding evidence links labels (catalog values, mentions, LLM tails) instead.
        match = self.match(entity.label, entity.type, merged_id=entity.id, keyed_only=True,
                           exclude=lambda e: apart(e) is not None)
        if match is None:
            # the pair it would have merged with, but for the facts or the catalog, is logged
            near = self.match(entity.label, entity.type, merged_id=entity.id, keyed_only=True)
            self.add(entity)
            if near is not None and (why := apart(near.entity_id)) is not None:
                other = self.by_id[near.entity_id]
                self.merges.append(MergeRecord(
                    kind="entity", outcome="kept_apart", type=entity.type, label=entity.label,
                    merged_id=entity.id, into=other.id, into_label=other.label,
                    reason=why.split(":")[0], score=round(near.score, 4),
                    source=entity.source.value, detail=why.partition(": ")[2]))
            return
        other = self.by_id[match.entity_id]
        if entity.id.startswith(ITEM_PREFIX) and not other.id.startswith(ITEM_PREFIX):
            keep, drop = entity, other
            self.by_id.pop(other.id)
            self.add(entity)
        else:
            keep, drop = other, entity
        self.redirects[drop.id] = keep.id
        self._add_aliases(keep.id, (drop.label, *drop.aliases))
        merged = self.facts.pop(drop.id, {})
        for rel, values in merged.items():
            self.facts.setdefault(keep.id, {}).setdefault(rel, set()).update(values)
        self.merges.append(MergeRecord(
            kind="entity", outcome="merged", type=entity.type, label=drop.label,
            merged_id=drop.id, into=keep.id, into_label=self.by_id[keep.id].label,
            reason=match.reason, score=round(match.score, 4), source=drop.source.value))

    def add_aliases(self, entity_id: str, names: Sequence[str]) -> None:
        """Record `names` as aliases of the entity `entity_id` resolves to (a text called it so:
        coreference in extraction); they link later labels like any alias."""
        self._add_aliases(self.canonical(entity_id), names)

    def _add_aliases(self, eid: str, names: Sequence[str]) -> None:
        entity = self.by_id[eid]
        new = [n.strip() for n in names if n.strip() and n.strip() != entity.label]
        aliases = tuple(dict.fromkeys((*entity.aliases, *new)))
        if aliases != entity.aliases:
            self.by_id[eid] = entity.model_copy(update={"aliases": aliases})
        self._register_names(eid, entity.type, new)


@dataclass(frozen=True)
class Resolved:
    entity: Entity
    is_new: bool


def resolve(label: str, type_: str, *, index: EntityIndex, source: SourceKind) -> Resolved:
    """Return the known entity for `label` of `type_`, or mint (and register) a new one.

    An exact label or alias wins; then, with a resolver, `EntityIndex.link`. A minted id that
    already belongs to an entity of the same type with a different label (slug collision, e.g.
    "AC/DC" vs "ACDC", or a merge a person rejected) gets a numeric suffix, so labels kept apart
    never share an id.
    """
    found = index.lookup(label, type_)
    if found is not None:
        return Resolved(found, is_new=False)
    linked = index.link(label, type_, source=source)
    if linked is not None:
        return Resolved(linked, is_new=False)
    base = mint_entity_id(type_, label)
    eid, n = base, 2
    while eid in index.by_id or eid in index.redirects:
        eid, n = f"{base}~{n}", n + 1
    entity = Entity(id=eid, label=label.strip(), type=type_, source=source)
    index.add(entity)
    return Resolved(entity, is_new=True)
