"""A 30,000-character description with facts at its start, middle and end: discovery and
extraction read all of it in chunks that fit the context, keep each fact once with evidence
from the text, and count what a chunk budget leaves unread."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from kgenrich.kg.records import Item, Ontology
from kgenrich.pipeline.chunking import TEMPLATE_TOKENS, TRUNCATED, estimate_tokens
from kgenrich.pipeline.discover import discover_entities
from kgenrich.pipeline.extract import (
    ANSWER_TOKENS,
    MAX_FACTS_PER_ANSWER,
    MAX_TAIL_CHARS,
    extract_relations,
    relations_schema,
)
from kgenrich.pipeline.llm.base import Message
from kgenrich.pipeline.llm.fake import FakeLLM
from kgenrich.pipeline.text import occurs_in
from kgenrich.testing.long_text import FACTS, long_description

CONTEXT = 2048  # the embedded server's default n_ctx
PATTERNS = (  # what the fake model recognises
    (re.compile(r"directed by ([A-Z]\w+ [A-Z]\w+)"), "directed_by", "Person"),
    (re.compile(r"led by ([A-Z]\w+ [A-Z]\w+)"), "starring", "Person"),
    (re.compile(r"in the (United Kingdom)"), "country_of_origin", "Country"),
)


class ContextModel:
    """A fake model with a context window: it sees only the prompt, and of an over-long prompt
    only what fits, as a server that truncates would; every overflow is recorded."""

    def __init__(self, context: int) -> None:
        self.context = context
        self.overflows: list[int] = []
        self.seen: list[str] = []

    def __call__(self, messages: Sequence[Message], schema: dict[str, Any]) -> str:
        system, user = messages[0]["content"], messages[-1]["content"]
        text = json.loads(user.split("Text:\n", 1)[1])
        used = estimate_tokens(system) + estimate_tokens(user) + TEMPLATE_TOKENS + ANSWER_TOKENS
        if used > self.context:
            self.overflows.append(used)
            text = text[: max(0, len(text) - 3 * (used - self.context))]
        self.seen.append(text)
        found = [(m.group(1), rel, typ) for rx, rel, typ in PATTERNS for m in rx.finditer(text)]
        if schema.get("title") == "EntitiesAnswer":
            return json.dumps({"entities": [{"label": t, "type": typ} for t, _, typ in found]})
        return json.dumps({"facts": [{"relation": rel, "tail": t} for t, rel, _ in found]})


ITEM = Item(id="m1", title="Alien", text={"description": long_description()})


def test_the_description_is_long_with_facts_spread_out() -> None:
    text = ITEM.full_text()
    assert len(ITEM.text["description"]) >= 30_000
    places = [text.index(FACTS[k][0]) / len(text) for k in ("start", "middle", "end")]
    assert places[0] < 0.01 and 0.4 < places[1] < 0.6 and places[2] > 0.99


def test_extraction_reads_start_middle_and_end_within_the_context(movies: Ontology) -> None:
    model = ContextModel(CONTEXT)
    res = extract_relations([ITEM], llm=FakeLLM(model), ontology=movies, max_per_item=20,
                            context_tokens=CONTEXT, max_chunks=16, clusters={})
    assert model.overflows == [] and len(model.seen) > 5  # many chunks, each fits
    got = {(c.relation, c.tail_label): c for c in res.kept}
    assert set(got) == {(rel, tail) for _, rel, tail, _ in FACTS.values()}
    for sentence, rel, tail, _ in FACTS.values():
        evidence = got[(rel, tail)].evidence or ""
        assert evidence == sentence  # the sentence that holds the tail, from the text
        assert occurs_in(evidence, ITEM.full_text())
    assert TRUNCATED not in res.rejection_counts()
    assert res.stats.llm_calls == len(model.seen)


def test_whole_text_in_one_prompt_would_lose_the_middle_and_end(movies: Ontology) -> None:
    """The control: the same model given the whole text overflows and misses two facts."""
    model = ContextModel(CONTEXT)
    res = extract_relations([ITEM], llm=FakeLLM(model), ontology=movies, max_per_item=20,
                            context_tokens=10_000_000, max_chunks=1, clusters={})
    assert model.overflows and [c.tail_label for c in res.kept] == ["Ridley Scott"]


def test_discovery_reads_all_chunks_and_keeps_each_entity_once(movies: Ontology) -> None:
    repeated = ITEM.model_copy(update={"text": {  # the director again at the very end
        "description": ITEM.text["description"] + " Ridley Scott returned for the sequel."}})
    model = ContextModel(CONTEXT)
    res = discover_entities([repeated], llm=FakeLLM(model), ontology=movies, nlp=None,
                            max_per_item=20, context_tokens=CONTEXT, max_chunks=16)
    assert model.overflows == []
    assert sorted((m.label, m.type) for m in res.kept) == sorted(
        (tail, typ) for _, _, tail, typ in FACTS.values())
    assert res.rejected == ()


def test_extraction_counts_truncation_when_max_chunks_binds(movies: Ontology) -> None:
    model = ContextModel(CONTEXT)
    res = extract_relations([ITEM], llm=FakeLLM(model), ontology=movies, max_per_item=20,
                            context_tokens=CONTEXT, max_chunks=2, clusters={})
    assert len(model.seen) == 2 and model.overflows == []
    assert [c.tail_label for c in res.kept] == ["Ridley Scott"]  # the rest was not read ...
    [rej] = [r for r in res.rejected if r.reason == TRUNCATED]  # ... and says so
    assert rej.item_id == "m1" and rej.detail.startswith("read 2 of ")


def test_every_chunk_and_item_shares_one_system_prompt(movies: Ontology) -> None:
    model = ContextModel(CONTEXT)
    llm = FakeLLM(model)
    other = Item(id="m2", title="Heat", text={"description": "A heist film set in Los Angeles."})
    extract_relations([ITEM, other], llm=llm, ontology=movies, max_per_item=20,
                      context_tokens=CONTEXT, max_chunks=16, clusters={})
    systems = {call[0]["content"] for call in llm.raw_calls}
    assert len(llm.raw_calls) > 5 and len(systems) == 1  # llama.cpp re-uses its KV cache
    assert "evidence" not in next(iter(systems))  # the model is not asked to quote


def test_answer_schema_bounds_runaway_tails_and_lists() -> None:
    schema = relations_schema(["directed_by"]).model_json_schema()
    assert schema["properties"]["facts"]["maxItems"] == MAX_FACTS_PER_ANSWER
    assert schema["$defs"]["FactOut"]["properties"]["tail"]["maxLength"] == MAX_TAIL_CHARS
    assert set(schema["$defs"]["FactOut"]["properties"]) == {"relation", "tail"}  # no quote
