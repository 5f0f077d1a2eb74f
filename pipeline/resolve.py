"""Entity resolution: link mentions to known entities (exact label, then alias) of the same type,
and mint stable ids for new ones. Entities of different types are never merged."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kgenrich.kg.ids import mint_entity_id, normalize_label
from kgenrich.kg.records import Entity, SourceKind


@dataclass
class EntityIndex:
    """Lookup of known entities by (type, normalized label or alias). Grows as entities mint."""

    by_id: dict[str, Entity] = field(default_factory=dict)
    _labels: dict[tuple[str, str], str] = field(default_factory=dict)
    _aliases: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def build(cls, entities: Iterable[Entity]) -> EntityIndex:
        index = cls()
        for e in entities:
            index.add(e)
        return index

    def add(self, entity: Entity) -> None:
        """Register an entity; the first entity with a label keeps it (stable across runs)."""
        if entity.id in self.by_id:
            return
        self.by_id[entity.id] = entity
        self._labels.setdefault((entity.type, normalize_label(entity.label)), entity.id)
        for alias in entity.aliases:
            self._aliases.setdefault((entity.type, normalize_label(alias)), entity.id)

    def lookup(self, label: str, type_: str) -> Entity | None:
        key = (type_, normalize_label(label))
        eid = self._labels.get(key) or self._aliases.get(key)
        return self.by_id[eid] if eid else None

    def labels_of_type(self, type_: str) -> list[str]:
        return sorted(e.label for e in self.by_id.values() if e.type == type_)

    def __len__(self) -> int:
        return len(self.by_id)


@dataclass(frozen=True)
class Resolved:
    entity: Entity
    is_new: bool


def resolve(label: str, type_: str, *, index: EntityIndex, source: SourceKind) -> Resolved:
    """Return the known entity for `label` of `type_`, or mint (and register) a new one.

    A minted id that already belongs to an entity of another type (same slug, other type is
    impossible since the type prefixes the id) or of the same type with a different label
    (slug collision, e.g. "AC/DC" vs "ACDC") gets a numeric suffix, so distinct labels never merge.
    """
    found = index.lookup(label, type_)
    if found is not None:
        return Resolved(found, is_new=False)
    base = mint_entity_id(type_, label)
    eid, n = base, 2
    while eid in index.by_id:
        eid, n = f"{base}~{n}", n + 1
    entity = Entity(id=eid, label=label.strip(), type=type_, source=source)
    index.add(entity)
    return Resolved(entity, is_new=True)
