"""parse_answer / extract_json_object against canned, fenced, chatty, malformed and truncated
answers, plus properties: it never crashes, and any JSON object survives any wrapping."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from kgenrich.errors import LLMResponseError
from kgenrich.pipeline.llm.core import extract_json_object, parse_answer


class Triple(BaseModel):
    head: str
    relation: str
    tail: str
    confidence: float = 1.0


class Triples(BaseModel):
    triples: list[Triple]


GOOD = '{"head": "Dune", "relation": "author", "tail": "Frank Herbert", "confidence": 0.9}'


def test_plain_json() -> None:
    t = parse_answer(GOOD, Triple)
    assert t == Triple(head="Dune", relation="author", tail="Frank Herbert", confidence=0.9)


@pytest.mark.parametrize(
    "raw",
    [
        f"```json\n{GOOD}\n```",
        f"```\n{GOOD}\n```",
        f"Sure! Here is the JSON you asked for:\n\n{GOOD}\n\nLet me know if you need more.",
        f"{GOOD} trailing words {{not json}}",
        f"I think {{braces}} in prose are fine: {GOOD}",
        f"  \n{GOOD}\n```",
    ],
)
def test_wrapped_json(raw: str) -> None:
    assert parse_answer(raw, Triple).tail == "Frank Herbert"


def test_braces_inside_strings() -> None:
    raw = 'x {"head": "a}b{", "relation": "r\\"}", "tail": "}"} y'
    t = parse_answer(raw, Triple)
    assert (t.head, t.relation, t.tail) == ("a}b{", 'r"}', "}")


def test_nested_schema() -> None:
    raw = 'Answer: {"triples": [{"head": "a", "relation": "r", "tail": "b"}]}'
    assert parse_answer(raw, Triples).triples[0].tail == "b"


def test_lax_coercion_is_pydantics() -> None:
    t = parse_answer('{"head": "a", "relation": "r", "tail": "b", "confidence": "0.5"}', Triple)
    assert t.confidence == 0.5


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "no JSON object"),
        ("I cannot answer that.", "no JSON object"),
        ("[1, 2, 3]", "no JSON object"),
        ('{"head": "a", "relation": "r", "tail": ', "truncated"),
        ('{"triples": [{"head": "a", "relation": "r", "tail": "b"}, {"head"', "truncated"),
        ("{'head': 'a', 'relation': 'r', 'tail': 'b'}", "malformed JSON"),
        ('{"head": "a", "relation": "r", "tail": "b",}', "malformed JSON"),
        ('{"head": "a", "relation": "r"}', "tail: Field required"),
        ('{"head": 1, "relation": "r", "tail": "b"}', "head: Input should be a valid string"),
        ('{"head": "a", "relation": "r", "tail": "b", "confidence": "high"}', "confidence"),
    ],
)
def test_bad_answers_raise(raw: str, fragment: str) -> None:
    with pytest.raises(LLMResponseError) as info:
        parse_answer(raw, Triple)
    assert fragment in str(info.value)
    assert info.value.raw == raw


def test_truncated_outer_object_never_yields_an_inner_one() -> None:
    # the inner object would validate as a Triple; a cut-off answer must not be mined for it
    raw = '{"note": "x", "best": {"head": "a", "relation": "r", "tail": "b"}, "more": '
    with pytest.raises(LLMResponseError, match="truncated"):
        parse_answer(raw, Triple)


def test_wrong_schema_names_the_fields() -> None:
    with pytest.raises(LLMResponseError) as info:
        parse_answer('{"triples": [{"head": "a"}]}', Triples)
    message = str(info.value)
    assert "Triples" in message
    assert "triples.0.relation" in message and "triples.0.tail" in message


# ------------------------------------------------------------------ properties

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
prose = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parse_never_crashes(raw: str) -> None:
    with contextlib.suppress(LLMResponseError):
        parse_answer(raw, Triple)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='{}[]":,\\ abc01tn', max_size=80))
def test_parse_never_crashes_on_json_shaped_noise(raw: str) -> None:
    with contextlib.suppress(LLMResponseError):
        extract_json_object(raw)


@settings(max_examples=300, deadline=None)
@given(json_objects, prose, prose, st.booleans(), st.integers(min_value=0, max_value=2))
def test_any_object_survives_any_wrapping(
    obj: dict[str, Any], before: str, after: str, fenced: bool, indent: int
) -> None:
    body = json.dumps(obj, indent=indent or None, ensure_ascii=indent == 1)
    if fenced:
        body = f"```json\n{body}\n```"
    assert extract_json_object(before + body + after) == obj
