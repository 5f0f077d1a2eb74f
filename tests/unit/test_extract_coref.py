"""Extraction with coreference, through a fake LLM that only answers what its text states: facts
reachable only through a surname, a pronoun or a role noun are found, their evidence is a span of
the original text, and the surname reaches the entity's aliases and the RDF as skos:altLabel."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from rdflib import SKOS, Graph, Literal

from kgenrich.kg.export.rdf import write_turtle
from kgenrich.kg.namespace import entity_iri
from kgenrich.kg.records import Item, Mention, Ontology, SourceKind
from kgenrich.pipeline import coref
from kgenrich.pipeline.candidates import to_triples
from kgenrich.pipeline.extract import build_extract_messages, extract_relations
from kgenrich.pipeline.llm.base import Message
from kgenrich.pipeline.llm.fake import FakeLLM
from kgenrich.pipeline.resolve import EntityIndex
from kgenrich.runs.chunks import extract_chunk
from kgenrich.runs.fingerprints import stage_fingerprints

BASE = "https://kgenrich.dev/id/"
BUDGET: dict[str, Any] = {"context_tokens": 4096, "max_chunks": 4}
# what the fake model reads in a text, and the fact it then answers: a reader that takes the
# marks at their word and names a person by the words in front of it
READS = [
    (re.compile(r"(?:He|he) \[([^\]]+)\] also directed it"), "directed_by"),
    (re.compile(r"[Tt]he director \[([^\]]+)\] also wrote"), "written_by"),
    (re.compile(r"(Nolan) also starred"), "starring"),
    (re.compile(r"(Christopher Nolan) wrote it"), "written_by"),
]


def reader(messages: Sequence[Message], schema: dict[str, Any]) -> str:
    text = json.loads(messages[1]["content"].split("Text:\n", 1)[1])
    facts = [{"relation": rel, "tail": m.group(1)} for pattern, rel in READS
             for m in pattern.finditer(text)]
    return json.dumps({"facts": facts})


def _item(text: str, item_id: str = "m") -> Item:
    return Item(id=item_id, title="Inception", text={"plot": text})


def _extract(movies: Ontology, items: Sequence[Item], *, mode: str = "rules",
             people: Sequence[str] = ("Christopher Nolan",)) -> tuple[Any, FakeLLM]:
    mentions = {it.id: [Mention(item_id=it.id, label=p, type="Person", found_by="test")
                        for p in people] for it in items}
    clusters = {it.id: coref.resolve_rules(it.full_text(), mentions=mentions[it.id],
                                           people=coref.person_types(movies),
                                           roles=coref.role_relations(movies))
                for it in items} if mode == "rules" else {}
    llm = FakeLLM(reader)
    return extract_relations(items, llm=llm, ontology=movies, max_per_item=20,
                             clusters=clusters, **BUDGET), llm


def _facts(result: Any) -> dict[str, tuple[str, str | None, tuple[str, ...]]]:
    return {c.relation: (c.tail_label, c.evidence, c.tail_aliases) for c in result.kept}


def test_fact_stated_through_a_pronoun_is_found_with_its_sentence(movies: Ontology) -> None:
    item = _item("Christopher Nolan wrote it. The shoot took a year. He also directed it.")
    res, _ = _extract(movies, [item])
    tail, evidence, aliases = _facts(res)["directed_by"]
    assert tail == "Christopher Nolan" and aliases == ()
    # the original text, from the name the pronoun stands for to the sentence that states it
    assert evidence == item.text["plot"]
    assert evidence is not None and evidence in item.full_text() and "[" not in evidence
    # the written_by fact keeps the sentence that states it
    assert _facts(res)["written_by"][1] == "Christopher Nolan wrote it."
    off, _ = _extract(movies, [item], mode="off")
    assert "directed_by" not in _facts(off)  # reachable only through the pronoun


def test_fact_stated_through_a_role_noun_gets_the_role_sentence(movies: Ontology) -> None:
    item = _item("A film by Christopher Nolan. The director also wrote the screenplay.")
    res, llm = _extract(movies, [item])
    assert _facts(res)["written_by"] == (
        "Christopher Nolan", "A film by Christopher Nolan. The director also wrote the "
        "screenplay.", ())
    assert "The director [Christopher Nolan] also wrote" in llm.raw_calls[0][1]["content"]


def test_surname_tail_maps_to_the_full_name_and_becomes_an_alias(
        movies: Ontology, tmp_path: Path) -> None:
    item = _item("Directed by Christopher Nolan. Nolan also starred in a cameo.")
    res, _ = _extract(movies, [item])
    assert _facts(res)["starring"] == ("Christopher Nolan",
                                       "Nolan also starred in a cameo.", ("Nolan",))
    index = EntityIndex.build([])
    triples, minted = to_triples(res.kept, index=index, source=SourceKind.EXTRACTED)
    [nolan] = [index.by_id[t.tail] for t in triples]
    assert nolan.label == "Christopher Nolan" and nolan.aliases == ("Nolan",)
    assert minted == {nolan.id} and index.lookup("Nolan", "Person") == nolan
    out = tmp_path / "kg.ttl"
    write_turtle(out, entities=list(index.by_id.values()), triples=triples, base=BASE)
    graph = Graph().parse(out, format="turtle")
    assert set(graph.objects(entity_iri(BASE, nolan.id), SKOS.altLabel)) == {Literal("Nolan")}
    # without coreference the surname is a person of its own, with no alias anywhere
    off, _ = _extract(movies, [item], mode="off")
    assert _facts(off)["starring"][0] == "Nolan"


def test_ambiguous_surname_is_not_mapped(movies: Ontology) -> None:
    item = _item("By Christopher Nolan and Jonathan Nolan. Nolan also starred in a cameo.")
    res, _ = _extract(movies, [item], people=("Christopher Nolan", "Jonathan Nolan"))
    tail, _, aliases = _facts(res)["starring"]
    assert (tail, aliases) == ("Nolan", ())  # a person of its own, as without coreference


def test_ambiguous_pronoun_is_not_marked_and_no_fact_comes_of_it(movies: Ontology) -> None:
    item = _item("Christopher Nolan and Emma Thomas wrote it. He also directed it.")
    res, llm = _extract(movies, [item], people=("Christopher Nolan", "Emma Thomas"))
    assert "directed_by" not in _facts(res)
    assert "[" not in llm.raw_calls[0][1]["content"]


def test_system_prompt_is_byte_identical_with_and_without_marks(movies: Ontology) -> None:
    marked = _item("Christopher Nolan wrote it. He also directed it.", "a")
    plain = Item(id="b", title="Alien", text={"plot": "Ridley Scott directed it."})
    _, llm = _extract(movies, [marked, plain])
    systems = {call[0]["content"] for call in llm.raw_calls}
    assert len(llm.raw_calls) == 2 and len(systems) == 1
    assert systems == {build_extract_messages(plain, ontology=movies)[0]["content"]}


def test_a_tail_from_the_mark_alone_is_no_tail_of_another_chunk(movies: Ontology) -> None:
    # the model names the person of a mark, but the chunk it read holds no mention of it
    clusters = coref.within(coref.resolve_rules(
        "Inception\nChristopher Nolan wrote it. He also directed it.",
        mentions=[Mention(item_id="m", label="Christopher Nolan", type="Person",
                          found_by="t")],
        people=coref.person_types(movies), roles=coref.role_relations(movies)), 0, 9)
    from kgenrich.pipeline.extract import parse_extract_answer, relations_schema
    from kgenrich.pipeline.llm.base import LLMAnswer

    schema = relations_schema(["directed_by"])
    answer = LLMAnswer(value=schema.model_validate(
        {"facts": [{"relation": "directed_by", "tail": "Christopher Nolan"}]}))
    kept, rejected = parse_extract_answer(answer, item=_item("x"), ontology=movies, model="m",
                                          text="Inception", clusters=clusters)
    assert kept == [] and [r.reason for r in rejected] == ["tail not in text"]


@pytest.mark.parametrize("mode", ["rules", "off"])
def test_extract_chunk_runs_coreference_from_mentions_and_catalog(
        movies: Ontology, mode: str) -> None:
    item = Item(id="m", title="Inception",
                text={"plot": "The film is Christopher Nolan's. He also directed it."},
                attributes={"directed_by": ("Christopher Nolan",)})
    mentions = {"m": coref.text_mentions("m", mentions=(), attributes=item.attributes,
                                         ontology=movies)}
    outcome = extract_chunk([item], llm=FakeLLM(reader), ontology=movies, max_per_item=20,
                            coref=mode, mentions=mentions, **BUDGET)
    kept = [(c.relation, c.tail_label) for c in outcome.done["m"].kept]
    assert (("directed_by", "Christopher Nolan") in kept) is (mode == "rules")


def test_extraction_fingerprint_follows_discovery_only_with_coreference(
        movies: Ontology) -> None:
    item = _item("Christopher Nolan wrote it.")

    def fps(coref_mode: str, discover_setting: int) -> dict[str, str]:
        return stage_fingerprints(item, model="m", ontology="o", settings={
            "discover": {"max_per_item": discover_setting}, "extract": {"coref": coref_mode}})

    assert fps("rules", 1)["extract"] != fps("rules", 2)["extract"]
    assert fps("off", 1)["extract"] == fps("off", 2)["extract"]
    assert fps("llm", 1)["extract"] != fps("rules", 1)["extract"]
