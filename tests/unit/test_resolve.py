"""Entity resolution: near-duplicates merge, types and disagreeing homonyms stay apart, every
merge is logged and can be undone from the review file, aliases reach RDF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rdflib import SKOS, Graph, Literal

from kgenrich.kg.export.rdf import write_turtle
from kgenrich.kg.namespace import entity_iri
from kgenrich.kg.records import (
    Decision,
    Entity,
    Ontology,
    Provenance,
    Relation,
    SourceKind,
    Triple,
)
from kgenrich.kg.review import ReviewRow
from kgenrich.pipeline.homonyms import disagreement, functional_facts
from kgenrich.pipeline.llm.fake import FakeLLM
from kgenrich.pipeline.merge_log import SAME_AS, merge_review_rows, rejected_merges
from kgenrich.pipeline.resolve import EntityIndex, Resolver, resolve
from kgenrich.pipeline.resolve_match import compact_keys, decide, parts_compatible
from kgenrich.settings import ResolveSettings

BASE = "https://example.org/id/"
SPIELBERG = Entity(id="person/steven-spielberg", label="Steven Spielberg", type="Person")
ONT = Ontology(
    item_type="Movie", types=("Movie", "Person", "Year"),
    relations=(Relation(name="directed_by", domain="Movie", range="Person"),
               Relation(name="born_in", domain="Person", range="Year", functional=True)))


def _index(*entities: Entity, facts: dict[str, dict[str, set[str]]] | None = None,
           rejected: frozenset[tuple[str, str]] = frozenset(), **settings: object) -> EntityIndex:
    return EntityIndex.build(entities, facts=facts, resolver=Resolver(
        ResolveSettings.model_validate(settings), rejected=rejected))


def _link(index: EntityIndex, label: str, type_: str = "Person") -> str:
    return resolve(label, type_, index=index, source=SourceKind.COMPLETED).entity.id


def _seed(head: str, rel: str, tail: str) -> Triple:
    return Triple(head=head, relation=rel, tail=tail, provenance=Provenance(
        source=SourceKind.SEED, decision=Decision.TRUSTED))


def test_spelling_variants_of_one_name_resolve_to_one_entity_with_their_aliases() -> None:
    index = _index(SPIELBERG)
    for label in ("Spielberg, Steven", "S. Spielberg", "Steven Allan Spielberg",
                  "STEVEN SPIELBERG"):
        assert _link(index, label) == SPIELBERG.id, label
    assert len(index) == 1
    assert index.by_id[SPIELBERG.id].aliases == (
        "Spielberg, Steven", "S. Spielberg", "Steven Allan Spielberg")
    # every link of a non-identical label is logged once, with its reason and score
    assert [(m.label, m.reason) for m in index.merges] == [
        ("Spielberg, Steven", "normalised"), ("S. Spielberg", "name_parts"),
        ("Steven Allan Spielberg", "name_parts")]
    assert all(m.outcome == "merged" and 0 < m.score <= 1 for m in index.merges)
    # a linked alias is then an exact match: no second log record
    assert _link(index, "S. Spielberg") == SPIELBERG.id and len(index.merges) == 3


def test_different_types_and_different_people_never_merge() -> None:
    index = _index(SPIELBERG, Entity(id="person/sasha-spielberg", label="Sasha Spielberg",
                                     type="Person"))
    assert _link(index, "Steven Spielberg", "Genre") == "genre/steven-spielberg"
    # "S. Spielberg" fits both people: no link by name parts, a new entity instead
    assert _link(index, "S. Spielberg") == "person/s.-spielberg"
    assert _link(index, "Tom Hanks") == "person/tom-hanks"
    assert not [m for m in index.merges if m.type == "Genre"]


def test_numbered_sequels_do_not_merge_by_fuzzy_labels() -> None:
    index = _index(Entity(id="movie/star-trek", label="Star Trek", type="Movie"),
                   Entity(id="movie/mi2", label="Mission: Impossible II", type="Movie"))
    assert _link(index, "Star Trek V", "Movie") != "movie/star-trek"
    assert _link(index, "Mission Impossible 2", "Movie") == "movie/mi2"  # II is 2


def test_without_resolution_only_exact_labels_link() -> None:
    index = _index(SPIELBERG, enabled=False)
    assert _link(index, "steven  SPIELBERG") == SPIELBERG.id
    assert _link(index, "Spielberg, Steven") == "person/spielberg-steven"
    assert index.merges == []
    plain = EntityIndex.build([SPIELBERG])  # no resolver at all: the same
    assert _link(plain, "S. Spielberg") == "person/s.-spielberg"


def test_homonyms_whose_functional_facts_disagree_stay_apart() -> None:
    a = Entity(id="wd/Q1", label="John Williams", type="Person", source=SourceKind.SEED)
    b = Entity(id="wd/Q2", label="John Williams", type="Person", source=SourceKind.SEED)
    c = Entity(id="wd/Q3", label="Williams, John", type="Person", source=SourceKind.SEED)
    years = [Entity(id="year/1932", label="1932", type="Year"),
             Entity(id="year/1941", label="1941", type="Year")]
    triples = [_seed("wd/Q1", "born_in", "year/1932"), _seed("wd/Q2", "born_in", "year/1941"),
               _seed("wd/Q3", "born_in", "year/1932")]
    facts = functional_facts([a, b, c, *years], triples, ontology=ONT)
    assert disagreement(facts["wd/Q1"], facts["wd/Q2"]) == "born_in: 1932 vs 1941"
    index = _index(*years, a, b, c, facts=facts)
    # Q2 is born in another year: kept apart; Q3 agrees with Q1: merged into it
    assert set(index.by_id) == {"year/1932", "year/1941", "wd/Q1", "wd/Q2"}
    assert index.canonical("wd/Q3") == "wd/Q1"
    kept = [m for m in index.merges if m.outcome == "kept_apart"]
    assert [(m.merged_id, m.into, m.reason) for m in kept] == [
        ("wd/Q2", "wd/Q1", "facts disagree")]
    assert [t.head for t in index.rewrite(triples)] == ["wd/Q1", "wd/Q2", "wd/Q1"]
    # the same homonyms without facts are one entity
    assert len(_index(a, b)) == 1


def test_two_catalog_items_never_merge_but_absorb_a_seed_duplicate() -> None:
    item1 = Entity(id="item/1", label="Crash", type="Movie")
    item2 = Entity(id="item/2", label="Crash", type="Movie")
    seed = Entity(id="movie/crash", label="Crash", type="Movie", source=SourceKind.SEED)
    index = _index(seed, item1, item2)
    assert set(index.by_id) == {"item/1", "item/2"}
    assert index.canonical("movie/crash") == "item/1"  # the item keeps its id
    assert [m.reason for m in index.merges if m.outcome == "kept_apart"] == ["both catalog items"]


def test_a_merge_rejected_in_the_review_file_splits_on_the_next_run() -> None:
    first = _index(SPIELBERG)
    assert _link(first, "S. Spielberg") == SPIELBERG.id
    rows = merge_review_rows(first.merges, previous={})
    assert [(r.head, r.relation, r.tail, r.head_label) for r in rows] == [
        ("person/s.-spielberg", SAME_AS, SPIELBERG.id, "S. Spielberg")]
    rejected = [r.model_copy(update={"verdict": "reject", "reviewer": "ann"}) for r in rows]
    # the file is JSONL of ReviewRow: the verdict survives a write and a read
    back = [ReviewRow.model_validate_json(r.model_dump_json()) for r in rejected]
    assert rejected_merges(back) == {("person/s.-spielberg", SPIELBERG.id)}
    second = _index(SPIELBERG, rejected=rejected_merges(back))
    assert _link(second, "S. Spielberg") == "person/s.-spielberg"
    assert second.by_id[SPIELBERG.id].aliases == ()
    # the rejected row stays in the next review file, with its verdict
    kept = merge_review_rows(second.merges, previous={r.key: r for r in back})
    assert [(r.head, r.verdict, r.reviewer) for r in kept] == [
        ("person/s.-spielberg", "reject", "ann")]


def test_a_rejected_entity_merge_keeps_both_entities() -> None:
    a = Entity(id="wd/Q1", label="John Williams", type="Person")
    b = Entity(id="wd/Q2", label="John Williams", type="Person")
    assert len(_index(a, b)) == 1
    assert set(_index(a, b, rejected=frozenset({("wd/Q2", "wd/Q1")})).by_id) == {"wd/Q1",
                                                                                   "wd/Q2"}


def _same(answer: bool) -> FakeLLM:
    return FakeLLM(lambda messages, schema: json.dumps({"same": answer}))


@pytest.mark.parametrize(("use_llm", "answer", "linked"), [
    (True, True, True), (True, False, False), (False, True, False)])
def test_the_llm_decides_only_ambiguous_pairs_and_only_when_switched_on(
        use_llm: bool, answer: bool, linked: bool) -> None:
    index = _index(Entity(id="org/sub-pop", label="Sub Pop Records", type="Label"),
                   use_llm=use_llm, name_parts=False)
    llm = _same(answer)
    assert index.resolver is not None
    index.resolver.llm = llm
    got = _link(index, "Sub Pop Recordings", "Label")  # fuzzy 0.79: ambiguous
    assert (got == "org/sub-pop") is linked
    assert len(llm.raw_calls) == (1 if use_llm else 0)
    if linked:
        assert index.merges[-1].reason == "llm"
    # an exact match never asks
    _link(index, "Sub Pop Records", "Label")
    assert len(llm.raw_calls) == (1 if use_llm else 0)


def test_keys_and_name_parts() -> None:
    assert "stevenspielberg" in compact_keys("Spielberg, Steven")
    assert "texasdenton" not in compact_keys("Denton, North Texas")  # a place, not Last, First
    assert parts_compatible(("s", "spielberg"), ("steven", "spielberg"))
    assert parts_compatible(("kevin", "costner"), ("kevin", "michael", "costner"))
    assert not parts_compatible(("michael", "moore"), ("thomas", "michael", "moore"))
    assert not parts_compatible(("north", "carolina"), ("durham", "north", "carolina"))
    assert decide(_index(SPIELBERG).scores("Tom Hanks", "Person"),
                  settings=ResolveSettings()) is None


def test_aliases_are_skos_alt_labels_that_rdflib_reads_back(tmp_path: Path) -> None:
    index = _index(SPIELBERG)
    _link(index, "Spielberg, Steven")
    _link(index, "S. Spielberg")
    write_turtle(tmp_path / "g.ttl", entities=index.by_id.values(), triples=[], base=BASE)
    graph = Graph().parse(tmp_path / "g.ttl", format="turtle")
    iri = entity_iri(BASE, SPIELBERG.id)
    assert set(graph.objects(iri, SKOS.altLabel)) == {Literal("Spielberg, Steven"),
                                                       Literal("S. Spielberg")}


def test_a_resolver_pickles_without_its_encoder_or_llm() -> None:
    import pickle

    r = Resolver(ResolveSettings(), llm=_same(True))
    assert pickle.loads(pickle.dumps(r)).llm is None


def test_the_base_graph_links_catalog_values_and_moves_seed_facts_onto_merged_ids() -> None:
    from kgenrich.kg.io.seed import SeedGraph
    from kgenrich.kg.records import Item
    from kgenrich.pipeline.catalog import catalog_triples
    from kgenrich.runs.graph import base_graph

    seed = SeedGraph(
        entities=(Entity(id="person/spielberg-steven", label="Spielberg, Steven", type="Person",
                         source=SourceKind.SEED),
                  Entity(id="year/1946", label="1946", type="Year", source=SourceKind.SEED),
                  Entity(id="movie/jaws", label="JAWS", type="Movie", source=SourceKind.SEED)),
        triples=(_seed("person/spielberg-steven", "born_in", "year/1946"),
                 _seed("movie/jaws", "directed_by", "person/spielberg-steven")))
    items = [Item(id="m1", title="Jaws", attributes={"directed_by": ("Steven Spielberg",)})]
    graph = base_graph(
        ontology=ONT, items=items, seed=seed, resolver=Resolver(ResolveSettings()),
        catalog=lambda its, **kw: catalog_triples(its, ontology=kw["ontology"],
                                                  index=kw["index"], item_links=kw["links"]))
    # the catalog's "Steven Spielberg" is the seed's entity: its id, the catalog name an alias;
    # the seed's unlinked "JAWS" is the catalog item: its fact moves onto item/m1
    assert graph.index.canonical("movie/jaws") == "item/m1"
    assert {t.key for t in graph.base} == {
        ("person/spielberg-steven", "born_in", "year/1946"),
        ("item/m1", "directed_by", "person/spielberg-steven")}
    assert graph.index.by_id["person/spielberg-steven"].aliases == ("Steven Spielberg",)
