"""One completion request per item (pipeline/complete_item.py): every gap asked at once, keyed by
relation, with the same pooling, choices and checks as one request per relation, and a system
prompt that is byte-identical across items (llama.cpp's KV-cache prefix)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kgenrich.kg.records import Item, Ontology, Relation
from kgenrich.pipeline.complete import complete_tails
from kgenrich.pipeline.complete_item import complete_items
from kgenrich.pipeline.llm.base import Message
from kgenrich.pipeline.llm.fake import FakeLLM
from kgenrich.testing import per_relation

ONT = Ontology(
    item_type="Movie",
    types=("Movie", "Person", "Genre"),
    closed_types=("Genre",),
    relations=(
        Relation(name="directed_by", domain="Movie", range="Person", functional=True),
        Relation(name="starring", domain="Movie", range="Person"),
        Relation(name="has_genre", domain="Movie", range="Genre"),
    ),
)
ALIEN = Item(id="1", title="Alien", text={"description": "A 1979 film by Ridley Scott."})
HEAT = Item(id="2", title="Heat", text={"description": "A 1995 crime film."})
DIRECTED, STARRING, GENRE = ONT.relations
KW: dict[str, Any] = dict(ontology=ONT, facts={}, temperature=0.7, max_candidates=10,
                          labels_by_type={"Genre": ["Horror", "Crime"], "Person": ["Al Pacino"]})


def test_one_request_per_item_sample_with_every_gap_pooled_per_relation() -> None:
    answers = iter([
        {"directed_by": ["Ridley Scott"], "starring": ["Sigourney Weaver", "Alien"],
         "has_genre": ["Horror", "Space Opera"]},
        {"directed_by": ["Ridley Scott"], "starring": [], "has_genre": ["Horror"]},
        {"directed_by": ["James Cameron"], "starring": ["Sigourney Weaver"], "has_genre": []},
    ])
    seen: list[tuple[Sequence[Message], dict[str, Any]]] = []

    def responder(messages: Sequence[Message], schema: dict[str, Any]) -> str:
        seen.append((messages, schema))
        return json.dumps(next(answers))

    res = complete_items([ALIEN], llm=FakeLLM(responder),
                         gaps={"1": [DIRECTED, STARRING, GENRE]}, samples=3, **KW)
    assert res.stats.llm_calls == 3  # not 3 relations x 3 samples
    got = {(c.relation, c.tail_label): round(c.agreement, 2) for c in res.kept}
    assert got == {("directed_by", "Ridley Scott"): 0.67, ("directed_by", "James Cameron"): 0.33,
                   ("starring", "Sigourney Weaver"): 0.67, ("has_genre", "Horror"): 0.67}
    assert res.rejection_counts() == {"answer is the item itself": 1,
                                      "answer not among choices": 1}
    schema = seen[0][1]
    assert schema["required"] == ["directed_by", "starring", "has_genre"]
    assert schema["properties"]["has_genre"]["items"]["enum"] == ["Crime", "Horror"]
    assert schema["properties"]["directed_by"]["maxItems"] == 1
    assert "enum" not in json.dumps(schema["properties"]["starring"])  # open type: free text


def test_the_system_prompt_is_identical_for_every_item_and_the_user_part_differs() -> None:
    prompts: list[Sequence[Message]] = []

    def responder(messages: Sequence[Message], schema: dict[str, Any]) -> str:
        prompts.append(messages)
        return json.dumps({name: [] for name in schema["properties"]})

    complete_items([ALIEN, HEAT], llm=FakeLLM(responder),
                   gaps={"1": [DIRECTED], "2": [STARRING, GENRE]}, samples=1, **KW)
    (sys_a, user_a), (sys_b, user_b) = prompts
    assert sys_a["content"] == sys_b["content"]  # byte-identical shared prefix
    assert "Choose from: Crime, Horror" in sys_a["content"]  # closed type: allowed values
    assert "Al Pacino" in sys_a["content"]  # small open type: hints
    assert "Alien" not in sys_a["content"] and "Heat" not in sys_b["content"]
    assert user_a["content"].endswith("Missing relation: directed_by")
    assert user_b["content"].endswith("Missing relation: starring\nMissing relation: has_genre")


def test_an_invalid_answer_is_one_rejection_per_gap_and_items_without_gaps_are_not_asked(
) -> None:
    llm = FakeLLM(lambda messages, schema: '{"directed_by": "not a list"}')
    res = complete_items([ALIEN, HEAT], llm=llm, gaps={"1": [DIRECTED, STARRING]}, samples=1,
                         **KW)
    assert res.kept == () and res.rejection_counts() == {"llm answer invalid": 2}
    assert all("Heat" not in json.dumps(call) for call in llm.raw_calls)


def test_same_facts_as_one_request_per_relation_for_a_model_that_answers_alike() -> None:
    # the test servers' adapter answers per-item prompts with the one-relation rule
    def rule(body: dict[str, Any]) -> str:
        user = body["messages"][-1]["content"]
        if "Missing relation: directed_by" in user:
            return '{"tails": ["Ridley Scott"]}'
        return '{"tails": ["Horror"]}' if "has_genre" in user else '{"tails": ["Tom Skerritt"]}'

    answer = per_relation(rule)

    def responder(messages: Sequence[Message], schema: dict[str, Any]) -> str:
        return answer({"messages": list(messages)})

    gaps = {"1": [DIRECTED, STARRING, GENRE]}
    one = complete_items([ALIEN], llm=FakeLLM(responder), gaps=gaps, samples=1, **KW)
    per = complete_tails([ALIEN], llm=FakeLLM(responder), gaps=gaps, samples=1, **KW)
    key = [(c.relation, c.tail_label, c.agreement) for c in one.kept]
    assert key == [(c.relation, c.tail_label, c.agreement) for c in per.kept]
    assert len(key) == 3 and one.stats.llm_calls == 1 and per.stats.llm_calls == 3
