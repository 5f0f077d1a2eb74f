"""The graph a run starts from: the catalog's items and the seed KG as one entity index and the
trusted base triples (seed + catalog fields), before any LLM stage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kgenrich.kg.ids import item_entity_id
from kgenrich.kg.io.seed import SeedGraph
from kgenrich.kg.records import Entity, Item, Ontology, StageResult, Triple, dedupe_triples
from kgenrich.pipeline.catalog import item_entities, with_item_entities
from kgenrich.pipeline.homonyms import functional_facts
from kgenrich.pipeline.resolve import EntityIndex, Resolver

#: Runs the catalog stage: (items, ontology=, index=, links=) -> its result. A flow passes its
#: task; tests pass ``pipeline.catalog.catalog_triples`` through a lambda.
CatalogStage = Callable[..., StageResult[Triple]]


@dataclass
class BaseGraph:
    """Items, the entity index (shared, grown by discovery) and the trusted base triples."""

    ontology: Ontology
    items: list[Item]
    seed: SeedGraph | None
    links: dict[str, str]  # item id -> the seed KG's entity for it
    item_entity: dict[str, str]  # item id -> its entity id (seed link or item/<id>)
    index: EntityIndex
    stages: dict[str, StageResult[Triple]]  # "seed", "catalog"
    base: list[Triple]  # seed + catalog triples, deduplicated

    @property
    def seed_triples(self) -> Sequence[Triple]:
        return self.seed.triples if self.seed else ()

    def labels(self) -> dict[str, str]:
        return {e.id: e.label for e in self.index.by_id.values()}

    def entity_types(self) -> dict[str, str]:
        return {e.id: e.type for e in self.index.by_id.values()}

    def entities(self) -> list[Entity]:
        # Every known entity is exported, also discovered ones no triple touches yet: a node
        # with a label and type is still a finding, and the next run may link it.
        return list(self.index.by_id.values())


def base_graph(
    *, ontology: Ontology, items: list[Item], seed: SeedGraph | None, catalog: CatalogStage,
    resolver: Resolver | None = None,
) -> BaseGraph:
    """Index the seed's and the items' entities, then run the catalog stage on that index.
    With a `resolver`, same-type near-duplicates among them merge (homonyms whose functional
    facts disagree stay apart) and the seed's triples are rewritten onto the merged ids."""
    links: dict[str, str] = dict(seed.item_links) if seed else {}
    item_entity = {it.id: links.get(it.id, item_entity_id(it.id)) for it in items}
    known = seed.entities if seed else ()
    # The catalog names the items the seed also has (its title wins over the seed's id-like
    # label, which becomes an alias), so merge before indexing: the index keeps first records.
    entities = with_item_entities(
        known, item_entities(items, ontology=ontology, item_links=links, known=known))
    index = EntityIndex.build(entities, resolver=resolver, facts=functional_facts(
        entities, seed.triples if seed else (), ontology=ontology) if resolver else None)
    stages: dict[str, StageResult[Triple]] = {}
    if seed is not None:
        stages["seed"] = StageResult(kept=seed.triples, rejected=seed.rejected)
    stages["catalog"] = catalog(items, ontology=ontology, index=index, links=links)
    base = dedupe_triples([*index.rewrite(seed.triples if seed else ()),
                           *stages["catalog"].kept])
    return BaseGraph(ontology=ontology, items=items, seed=seed, links=links,
                     item_entity=item_entity, index=index, stages=stages, base=base)

