"""Catalog stage: each item becomes an entity, each attribute value a trusted triple whose
tail is resolved against known entities of the relation's range type."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from kgenrich.kg.ids import item_entity_id
from kgenrich.kg.records import (
    Decision,
    Entity,
    Item,
    Ontology,
    Provenance,
    Rejection,
    SourceKind,
    StageResult,
    StageStats,
    Triple,
)
from kgenrich.pipeline.resolve import EntityIndex, resolve

STAGE = "catalog"


def item_entities(
    items: Sequence[Item],
    *,
    ontology: Ontology,
    item_links: Mapping[str, str] | None = None,
    known: Sequence[Entity] = (),
) -> list[Entity]:
    """One entity per item; `item_links` maps an item id to a seed entity id to reuse.

    The catalog names the item: its title is the label, and the item id plus every other name
    `known` (the seed KG's entities) gives the same entity id become aliases, whichever source
    named the item first. The item's text and attribute fields ride along on the entity."""
    links = item_links or {}
    by_id = {e.id: e for e in known}
    out: list[Entity] = []
    for it in items:
        eid = links.get(it.id, item_entity_id(it.id))
        other = by_id.get(eid)
        names = [it.id, *((other.label, *other.aliases) if other is not None else ())]
        out.append(
            Entity(
                id=eid,
                label=it.title,
                type=ontology.item_type,
                aliases=tuple(n for n in dict.fromkeys(names) if n and n != it.title),
                source=other.source if other is not None else SourceKind.CATALOG,
                text=dict(it.text),
                attributes=dict(it.attributes),
            )
        )
    return out


def with_item_entities(known: Sequence[Entity], items: Sequence[Entity]) -> list[Entity]:
    """`known` with each entity an item entity shares an id with replaced by that item entity,
    in place, then the remaining item entities: one record per id, first-seen order kept (the
    entity index registers labels in this order)."""
    by_id = {e.id: e for e in items}
    merged = [by_id.get(e.id, e) for e in known]
    seen = {e.id for e in known}
    merged += [e for e in items if e.id not in seen]
    return merged


def catalog_triples(
    items: Sequence[Item],
    *,
    ontology: Ontology,
    index: EntityIndex,
    item_links: Mapping[str, str] | None = None,
) -> StageResult[Triple]:
    """Trusted triples from attribute columns. `index` gains the entities minted for values."""
    start = time.perf_counter()
    links = item_links or {}
    kept: list[Triple] = []
    rejected: list[Rejection] = []
    for it in items:
        head = links.get(it.id, item_entity_id(it.id))
        for rel_name, values in it.attributes.items():
            rel = ontology.relation(rel_name)
            if rel is None:
                rejected.append(
                    Rejection(stage=STAGE, reason="relation not in ontology", item_id=it.id,
                              detail=rel_name)
                )
                continue
            for value in values:
                if not value.strip():
                    continue
                tail = resolve(value, rel.range, index=index, source=SourceKind.CATALOG).entity
                kept.append(
                    Triple(
                        head=head,
                        relation=rel.name,
                        tail=tail.id,
                        provenance=Provenance(
                            source=SourceKind.CATALOG,
                            item_id=it.id,
                            evidence=value,
                            decision=Decision.TRUSTED,
                            accepted_by="catalog",
                        ),
                    )
                )
    return StageResult(
        kept=tuple(kept),
        rejected=tuple(rejected),
        stats=StageStats(seconds=time.perf_counter() - start),
    )
