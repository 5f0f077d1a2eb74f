"""Multiple-choice completion of open-type relations (pipeline/complete_choice.py): candidates
ranked from the graph, a numbered question with "none of these", robust parsing, and the
choice's probability from token log-probabilities recorded on the triple."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletion
from pydantic import ValidationError

from kgenrich.kg.records import Decision, Item, Ontology, Provenance, Relation, SourceKind, Triple
from kgenrich.pipeline.candidates import to_triples
from kgenrich.pipeline.complete_choice import (
    choice_probabilities,
    choice_relations,
    choice_schema,
    complete_choices,
    complete_gaps,
    rank_options,
)
from kgenrich.pipeline.llm.base import LLMRequest, Message, TokenLogprob
from kgenrich.pipeline.llm.core import RawReply
from kgenrich.pipeline.llm.fake import FakeLLM
from kgenrich.pipeline.llm.openai_backend import _reply_from, build_chat_kwargs
from kgenrich.pipeline.resolve import EntityIndex
from kgenrich.settings import Settings
from kgenrich.testing import per_relation

ONT = Ontology(
    item_type="Movie", types=("Movie", "Person", "Genre"), closed_types=("Genre",),
    relations=(Relation(name="directed_by", domain="Movie", range="Person", functional=True),
               Relation(name="starring", domain="Movie", range="Person"),
               Relation(name="has_genre", domain="Movie", range="Genre")),
)
DIRECTED, STARRING, GENRE = ONT.relations
Q = Item(id="q", title="Quiz Show", text={})
LONE = Item(id="lone", title="Lone Film", text={})


def _t(head: str, rel: str, tail: str) -> Triple:
    return Triple(head=f"item/{head}", relation=rel, tail=f"person/{tail}",
                  provenance=Provenance(source=SourceKind.SEED, decision=Decision.TRUSTED))


# a shares x and y with q, b shares only x; d3 directs three films none of which shares anything
GRAPH = [_t("a", "starring", "x"), _t("a", "starring", "y"), _t("a", "directed_by", "d1"),
         _t("b", "starring", "x"), _t("b", "directed_by", "d2"),
         *[_t(f, "directed_by", "d3") for f in ("c", "e", "f")],
         _t("q", "starring", "x"), _t("q", "starring", "y")]
LABELS = {f"person/{p}": p.upper() for p in ("x", "y", "d1", "d2", "d3")}
ENTITY = {"q": "item/q", "lone": "item/lone"}


def _options(*, require_evidence: bool) -> dict[str, dict[str, tuple[str, ...]]]:
    return rank_options([Q, LONE], gaps={"q": [DIRECTED], "lone": [DIRECTED]}, triples=GRAPH,
                        labels=LABELS, item_entity=ENTITY, relations={"directed_by"}, size=3,
                        require_evidence=require_evidence)


def test_candidates_rank_by_shared_neighbours_then_frequency() -> None:
    # D1 shares both actors (1/2 + 1/1), D2 one (1/2); D3 only fills the list by frequency
    assert _options(require_evidence=False) == {
        "q": {"directed_by": ("D1", "D2", "D3")}, "lone": {"directed_by": ("D3", "D1", "D2")}}


def test_an_item_without_co_occurring_candidates_gets_none_when_evidence_is_required() -> None:
    assert _options(require_evidence=True) == {"q": {"directed_by": ("D1", "D2", "D3")}}


def test_a_neighbour_who_is_a_tail_of_the_relation_elsewhere_is_a_candidate() -> None:
    # x acts in q and directs z: an actor who directs
    graph = [*GRAPH, _t("z", "directed_by", "x")]
    got = rank_options([Q], gaps={"q": [DIRECTED]}, triples=graph, labels=LABELS,
                       item_entity=ENTITY, relations={"directed_by"}, size=2,
                       require_evidence=True)
    assert got == {"q": {"directed_by": ("D1", "X")}}  # D1 1.5, X 1.0, D2 0.5


def test_only_open_range_relations_in_choice_mode_are_asked_as_choices() -> None:
    assert choice_relations(ONT, modes={"directed_by": "choice", "has_genre": "choice"},
                            default="free") == {"directed_by"}
    assert choice_relations(ONT, modes={"directed_by": "free"}, default="choice") == {"starring"}


def _digit(d: str, dist: dict[str, float]) -> TokenLogprob:
    return TokenLogprob(token=d, logprob=math.log(dist[d]),
                        top=tuple((k, math.log(v)) for k, v in dist.items()))


def _tokens(answer_digit: str, dist: dict[str, float]) -> tuple[TokenLogprob, ...]:
    plain = [TokenLogprob(token=t, logprob=-0.01) for t in ('{"', "choice", '":', " ")]
    return (*plain, _digit(answer_digit, dist), TokenLogprob(token="}", logprob=-0.01))


def test_choice_probability_is_the_share_of_the_offered_digits() -> None:
    # "7" is not an option of three and " " is not a digit: both are left out
    dist = {"2": 0.5, "1": 0.2, "0": 0.05, "7": 0.2, " ": 0.05}
    got = choice_probabilities(_tokens("2", dist), n_options=3)
    assert len(got) == 1
    assert got[0] == pytest.approx({2: 0.5 / 0.75, 1: 0.2 / 0.75, 0: 0.05 / 0.75})


def test_no_probability_when_the_tokens_show_no_single_digit_answer() -> None:
    assert choice_probabilities([TokenLogprob(token='{"choice": 12}', logprob=-1.0)],
                                n_options=9) == []
    assert choice_probabilities([], n_options=3) == []


def _ask(reply: str | RawReply, options: Sequence[str] = ("D1", "D2", "D3")) -> Any:
    seen: list[tuple[Sequence[Message], dict[str, Any]]] = []

    def responder(messages: Sequence[Message], schema: dict[str, Any]) -> str | RawReply:
        seen.append((messages, schema))
        return reply

    res = complete_choices([Q], llm=FakeLLM(responder), ontology=ONT, gaps={"q": [DIRECTED]},
                           facts={"q": [("starring", "X")]},
                           options={"q": {"directed_by": tuple(options)}}, samples=1,
                           temperature=0.7, picks=1, top_logprobs=20)
    return res, seen


def test_the_pick_becomes_a_candidate_with_its_rank_and_probability_on_the_triple() -> None:
    dist = {"2": 0.6, "1": 0.3, "0": 0.1}
    res, seen = _ask(RawReply('{"choice": 2}', logprobs=_tokens("2", dist)))
    [cand] = res.kept
    assert (cand.tail_label, cand.choice_rank) == ("D2", 2)
    assert cand.choice_probability == pytest.approx(0.6)
    user = seen[0][0][-1]["content"]
    assert user.endswith("1. D1\n2. D2\n3. D3\n0. none of these")
    assert seen[0][1]["properties"]["choice"]["enum"] == [0, 1, 2, 3]
    [triple], _ = to_triples(res.kept, index=EntityIndex.build([]), source=SourceKind.COMPLETED)
    assert triple.provenance.scores["choice_probability"] == pytest.approx(0.6)
    assert triple.provenance.scores["choice_rank"] == 2.0


def test_without_log_probabilities_no_probability_is_recorded() -> None:
    res, _ = _ask('{"choice": 1}')
    [cand] = res.kept
    assert (cand.tail_label, cand.choice_probability) == ("D1", None)
    [triple], _ = to_triples(res.kept, index=EntityIndex.build([]), source=SourceKind.COMPLETED)
    assert "choice_probability" not in triple.provenance.scores


def test_none_of_these_keeps_nothing() -> None:
    res, _ = _ask('{"choice": 0}')
    assert res.kept == ()
    assert res.rejection_counts() == {"model did not know": 1}


@pytest.mark.parametrize("reply", ["the director is D2", '{"choice": 7}', '{"choice": "D2"}'])
def test_a_malformed_or_out_of_range_answer_is_a_recorded_rejection(reply: str) -> None:
    res, seen = _ask(reply)
    assert res.kept == ()
    assert res.rejection_counts() == {"llm answer invalid": 1}
    assert len(seen) == 2  # the answer and its one repair


def test_complete_gaps_asks_gaps_with_options_as_choices_and_the_rest_free_form() -> None:
    def responder(messages: Sequence[Message], schema: dict[str, Any]) -> str:
        if schema["title"] == "ChoiceAnswer":
            return '{"choice": 1}'
        return json.dumps({rel: ["Crime"] if rel == "has_genre" else ["Someone"]
                           for rel in schema["properties"]})

    res = complete_gaps([Q, LONE], llm=FakeLLM(responder), ontology=ONT,
                        gaps={"q": [DIRECTED, GENRE], "lone": [DIRECTED]}, facts={},
                        labels_by_type={"Genre": ["Crime"]}, samples=1, temperature=0.7,
                        max_candidates=10, per_item=True,
                        options=_options(require_evidence=True), picks=1, top_logprobs=0)
    got = {(c.item_id, c.relation, c.tail_label, c.choice_rank) for c in res.kept}
    assert got == {("q", "directed_by", "D1", 1), ("q", "has_genre", "Crime", None),
                   ("lone", "directed_by", "Someone", None)}
    assert res.stats.llm_calls == 3  # q's choice, q's free-form genre, lone's free-form


def test_scripted_rules_answer_choice_prompts_with_the_option_they_name() -> None:
    @per_relation
    def rule(body: dict[str, Any]) -> str:
        return '{"tails": ["D2"]}'

    messages = _ask('{"choice": 0}')[1][0][0]
    assert json.loads(rule({"messages": list(messages)})) == {"choice": 2}


def test_log_probabilities_are_asked_for_parsed_and_cached(tmp_path: Path) -> None:
    kwargs = build_chat_kwargs(model="m", messages=[], json_schema={}, mode="json_object",
                               temperature=0.0, seed=0, max_tokens=8, top_logprobs=5)
    assert (kwargs["logprobs"], kwargs["top_logprobs"]) == (True, 5)
    assert "logprobs" not in build_chat_kwargs(model="m", messages=[], json_schema={},
                                               mode="json_object", temperature=0.0, seed=0,
                                               max_tokens=8)
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [{
        "index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": '{"choice": 2}'},
        "logprobs": {"content": [{"token": "2", "logprob": -0.5, "bytes": None,
                                  "top_logprobs": [{"token": "2", "logprob": -0.5,
                                                    "bytes": None}]}]}}]}
    reply = _reply_from(ChatCompletion.model_validate(body))
    assert reply.logprobs == (TokenLogprob("2", -0.5, (("2", -0.5),)),)

    llm = FakeLLM([reply], cache_dir=tmp_path)
    request = LLMRequest(messages=({"role": "user", "content": "q"},),
                         schema=choice_schema(3, picks=1), top_logprobs=5)
    first = llm.complete(request)
    again = llm.complete(request)  # the script is spent: this one must come from the cache
    assert again.cached and again.logprobs == first.logprobs == reply.logprobs


def test_choice_size_is_at_most_nine_one_digit_per_option() -> None:
    with pytest.raises(ValidationError):
        Settings(complete={"choice_size": 10})
