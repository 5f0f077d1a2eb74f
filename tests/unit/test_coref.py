"""Coreference within one text: the rules (surnames, pronouns, role nouns, and the ambiguous
cases they leave alone), the marks extraction reads, and the LLM resolver's parser against
canned and malformed answers, with its fallback to the rules."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from kgenrich.kg.records import Item, Mention, Ontology
from kgenrich.pipeline import coref
from kgenrich.pipeline.coref_llm import (
    FALLBACK,
    STAGE,
    CorefAnswer,
    build_coref_messages,
    mention_kind,
    numbered,
    parse_coref_answer,
    resolve_coreference,
)
from kgenrich.pipeline.llm.base import LLMAnswer, Message
from kgenrich.pipeline.llm.fake import FakeLLM


def _people(*labels: str) -> list[Mention]:
    return [Mention(item_id="m", label=lab, type="Person", found_by="test") for lab in labels]


def _clusters(movies: Ontology, text: str, *labels: str) -> tuple[coref.Cluster, ...]:
    return coref.resolve_rules(text, mentions=_people(*labels), people=coref.person_types(movies),
                               roles=coref.role_relations(movies))


def _spans(text: str, cluster: coref.Cluster) -> list[tuple[str, str]]:
    return [(text[m.start:m.end], m.kind) for m in cluster.mentions]


def test_role_nouns_map_to_the_one_relation_they_imply(movies: Ontology) -> None:
    roles = coref.role_relations(movies)
    assert roles["director"] == roles["filmmaker"] == "directed_by"
    assert roles["screenwriter"] == "written_by" and roles["actress"] == "starring"
    assert "producer" not in roles  # the ontology has no relation it implies
    assert coref.person_types(movies) == {"Person"}


def test_surname_resolves_to_the_one_full_name_of_the_text(movies: Ontology) -> None:
    text = "Inception\nA film by Christopher Nolan. Nolan's script came first."
    [c] = _clusters(movies, text, "Christopher Nolan")
    assert c.canonical == "Christopher Nolan"
    assert _spans(text, c) == [("Christopher Nolan", "name"), ("Nolan", "alias")]
    assert c.aliases() == ("Nolan",)
    # the "Nolan" inside the full name is that name, not a second mention
    assert c.mentions[1].start == text.index("Nolan's")


def test_surname_of_two_people_stays_unresolved(movies: Ontology) -> None:
    text = "Inception\nBy Christopher Nolan and Jonathan Nolan. Nolan wrote it."
    assert _clusters(movies, text, "Christopher Nolan", "Jonathan Nolan") == ()


def test_a_surname_mention_of_its_own_joins_its_full_name(movies: Ontology) -> None:
    # discovery found both "Christopher Nolan" and "Nolan": one person, with an alias
    text = "Inception\nChristopher Nolan made it. Nolan also wrote it."
    [c] = _clusters(movies, text, "Nolan", "Christopher Nolan")
    assert c.canonical == "Christopher Nolan" and c.aliases() == ("Nolan",)


def test_pronoun_resolves_to_the_one_person_before_it(movies: Ontology) -> None:
    text = ("Inception\nChristopher Nolan wrote it. The film was shot in Canada. "
            "He also directed it.")
    [c] = _clusters(movies, text, "Christopher Nolan")
    he = c.mentions[1]
    assert (text[he.start:he.end], he.kind) == ("He", "pronoun")
    assert he.antecedent == (text.index("Christopher"), text.index(" wrote"))


def test_pronoun_with_two_people_before_it_stays_unresolved(movies: Ontology) -> None:
    text = "Inception\nChristopher Nolan and Emma Thomas produced it. He also directed it."
    assert _clusters(movies, text, "Christopher Nolan", "Emma Thomas") == ()


def test_pronoun_too_far_from_any_name_stays_unresolved(movies: Ontology) -> None:
    text = ("Inception\nChristopher Nolan wrote it. It was shot in Canada. It opened in July. "
            "It won awards. He also directed it.")
    assert _clusters(movies, text, "Christopher Nolan") == ()


def test_he_and_she_for_one_person_keep_only_the_first(movies: Ontology) -> None:
    text = "Heat\nMichael Mann wrote it. He directed it. She starred in it."
    [c] = _clusters(movies, text, "Michael Mann")
    assert [m.text for m in c.mentions if m.kind == "pronoun"] == ["He"]


def test_role_noun_resolves_and_carries_its_relation(movies: Ontology) -> None:
    text = "Inception\nA film by Christopher Nolan. The director also wrote the screenplay."
    [c] = _clusters(movies, text, "Christopher Nolan")
    role = c.mentions[1]
    assert (role.text, role.kind, role.relation) == ("The director", "role", "directed_by")


def test_role_noun_after_another_role_stays_unresolved(movies: Ontology) -> None:
    # the sentence before says Tom Hardy stars: "the director" is somebody else
    text = "Inception\nIt stars Tom Hardy. The director wrote the screenplay too."
    assert _clusters(movies, text, "Tom Hardy") == ()


def test_role_noun_in_apposition_names_the_person_after_it(movies: Ontology) -> None:
    text = "Inception\nIt stars Tom Hardy. The director, Christopher Nolan, wrote it."
    [c] = _clusters(movies, text, "Tom Hardy", "Christopher Nolan")
    assert c.canonical == "Christopher Nolan"
    assert [(m.text, m.kind) for m in c.mentions] == [("The director", "role"),
                                                       ("Christopher Nolan", "name")]


def test_director_of_photography_is_no_director(movies: Ontology) -> None:
    text = "Inception\nA film by Christopher Nolan. The director of photography was Wally."
    assert _clusters(movies, text, "Christopher Nolan") == ()


def test_short_forms_skip_initials_and_particles() -> None:
    assert coref.short_forms("Guillermo del Toro") == {"Guillermo", "del Toro", "Toro"}
    assert coref.short_forms("J. R. R. Tolkien") == {"R. R. Tolkien", "R. Tolkien", "Tolkien"}
    assert coref.short_forms("Will Smith") == {"Smith"}  # "Will" starts too many sentences
    assert coref.short_forms("Madonna") == set()


def test_annotate_marks_pronouns_and_roles_only(movies: Ontology) -> None:
    text = "Inception\nChristopher Nolan wrote it. Nolan cast Tom Hardy. The director chose him."
    clusters = _clusters(movies, text, "Christopher Nolan", "Tom Hardy")
    # two people in the sentence before "The director" and "him": both unresolved, unmarked;
    # the surname is resolved but left as written
    assert [c.aliases() for c in clusters] == [("Nolan",)]
    assert coref.annotate(text, clusters) == text
    text2 = "Inception\nChristopher Nolan wrote it. He also directed it."
    c2 = _clusters(movies, text2, "Christopher Nolan")
    assert coref.annotate(text2, c2) == ("Inception\nChristopher Nolan wrote it. "
                                         "He [Christopher Nolan] also directed it.")
    assert coref.annotation_chars(c2) == " [Christopher Nolan]"


def test_within_shifts_spans_to_the_chunk_and_drops_outside_antecedents(
        movies: Ontology) -> None:
    text = "Inception\nChristopher Nolan wrote it. He also directed it."
    clusters = _clusters(movies, text, "Christopher Nolan")
    cut = text.index("He")
    [c] = coref.within(clusters, cut, len(text))
    assert [(m.text, m.start, m.antecedent) for m in c.mentions] == [("He", 0, None)]
    [whole] = coref.within(clusters, 0, len(text))
    assert whole.mentions == clusters[0].mentions


def test_text_mentions_add_catalog_values_of_person_relations(movies: Ontology) -> None:
    found = coref.text_mentions(
        "m", mentions=[*_people("Tom Hardy"),
                       Mention(item_id="m", label="Canada", type="Country", found_by="t")],
        attributes={"directed_by": ("Christopher Nolan",), "has_genre": ("Thriller",)},
        ontology=movies)
    assert [(m.label, m.found_by) for m in found] == [("Tom Hardy", "test"),
                                                       ("Christopher Nolan", "catalog")]


# -- the LLM resolver ---------------------------------------------------------------------

TEXT = "Inception\nChristopher Nolan wrote it with Jonathan Nolan. He also directed it."


def _answer(value: dict[str, Any] | None, error: str | None = None) -> LLMAnswer[CorefAnswer]:
    return LLMAnswer(value=CorefAnswer.model_validate(value) if value is not None else None,
                     error=error)


def _parse(movies: Ontology, answer: LLMAnswer[CorefAnswer], text: str = TEXT,
           labels: Sequence[str] = ("Christopher Nolan", "Jonathan Nolan"),
           ) -> tuple[tuple[coref.Cluster, ...] | None, list[str]]:
    clusters, rejected = parse_coref_answer(
        answer, item_id="m", text=text, mentions=_people(*labels),
        people=coref.person_types(movies), roles=coref.role_relations(movies), found_by="llm:x")
    return clusters, [r.reason for r in rejected]


def test_numbered_text_and_messages_keep_the_system_prompt_fixed() -> None:
    assert numbered(TEXT) == ("[1] Inception\n[2] Christopher Nolan wrote it with Jonathan "
                              "Nolan.\n[3] He also directed it.")
    one = build_coref_messages(["Christopher Nolan"], text=TEXT)
    other = build_coref_messages(["Ridley Scott"], text="Alien\nRidley Scott directed it.")
    assert one[0] == other[0] and "- Christopher Nolan" in one[1]["content"]


def test_llm_parser_keeps_a_valid_cluster_with_spans_and_antecedent(movies: Ontology) -> None:
    clusters, reasons = _parse(movies, _answer({"clusters": [
        {"canonical": "christopher nolan", "mentions": [{"text": "He", "sentence": 3}]}]}))
    assert reasons == [] and clusters is not None
    [c] = clusters
    assert c.canonical == "Christopher Nolan" and c.found_by == "llm:x"
    he = next(m for m in c.mentions if m.kind == "pronoun")
    assert TEXT[he.start:he.end] == "He" and he.start == TEXT.index("He also")
    assert he.antecedent == (TEXT.index("Christopher"), TEXT.index(" wrote"))


def test_llm_parser_rejects_each_bad_mention_on_its_own(movies: Ontology) -> None:
    clusters, reasons = _parse(movies, _answer({"clusters": [
        {"canonical": "Steven Spielberg", "mentions": [{"text": "He", "sentence": 3}]},
        {"canonical": "Christopher Nolan", "mentions": [
            {"text": "She", "sentence": 3},           # not in that sentence
            {"text": "He", "sentence": 9},            # no such sentence
            {"text": "Jonathan Nolan", "sentence": 2},  # another listed person
            {"text": "", "sentence": 3},
            {"text": "He", "sentence": 3}]}]}))
    assert reasons == ["canonical not a mention of the text", "mention not in text",
                       "sentence out of range", "mention names another person",
                       "mention empty or too long"]
    assert clusters is not None
    [c] = clusters
    assert [m.text for m in c.mentions if m.kind != "name"] == ["He"]


def test_llm_parser_answer_invalid_means_fallback(movies: Ontology) -> None:
    clusters, reasons = _parse(movies, _answer(None, error="invalid answer after one repair"))
    assert clusters is None and reasons == [FALLBACK]


def test_llm_parser_makes_no_alias_of_a_description(movies: Ontology) -> None:
    text = "Inception\nChristopher Nolan wrote it. The young filmmaker also directed it."
    clusters, _ = _parse(movies, _answer({"clusters": [{"canonical": "Christopher Nolan",
                                                        "mentions": [
        {"text": "The young filmmaker", "sentence": 3}]}]}), text=text,
        labels=("Christopher Nolan",))
    assert clusters is not None
    [c] = clusters
    assert c.aliases() == () and [m.kind for m in c.mentions] == ["name", "description"]
    assert mention_kind("Chris", canonical="Christopher Nolan") == "alias"
    assert mention_kind("the director", canonical="X Y") == "role"
    assert mention_kind("his", canonical="X Y") == "pronoun"


ITEM = Item(id="m", title="Inception",
            text={"plot": "Christopher Nolan wrote it. He also directed it."})


def _resolve(llm: FakeLLM, mode: str, movies: Ontology) -> Any:
    return resolve_coreference([ITEM], mode=mode, llm=llm,
                               mentions={"m": _people("Christopher Nolan")}, ontology=movies,
                               context_tokens=4096, max_chunks=4)


def test_llm_resolver_falls_back_to_the_rules_on_a_malformed_answer(movies: Ontology) -> None:
    llm = FakeLLM(lambda messages, schema: "{\"clusters\": [{\"canonical\": 3}")  # truncated
    found = _resolve(llm, "llm", movies)
    rules = _resolve(FakeLLM([]), "rules", movies)
    assert found.clusters == rules.clusters and found.clusters["m"]
    assert [r.reason for r in found.rejected] == [FALLBACK]
    assert llm.usage().by_stage[STAGE]["calls"] >= 1


def test_llm_resolver_uses_a_valid_answer(movies: Ontology) -> None:
    def answer(messages: Sequence[Message], schema: dict[str, Any]) -> str:
        assert "[2] Christopher Nolan wrote it." in json.loads(
            messages[1]["content"].split("Text:\n", 1)[1])
        return json.dumps({"clusters": [{"canonical": "Christopher Nolan", "mentions": [
            {"text": "He", "sentence": 3}]}]})

    found = _resolve(FakeLLM(answer), "llm", movies)
    [c] = found.clusters["m"]
    full = ITEM.full_text()
    assert c.found_by == "llm:fake" and found.rejected == ()
    assert [full[m.start:m.end] for m in c.mentions] == ["Christopher Nolan", "He"]


def test_rules_and_off_make_no_llm_call(movies: Ontology) -> None:
    llm = FakeLLM([])  # any call would fail: no scripted replies
    assert _resolve(llm, "rules", movies).clusters["m"]
    assert _resolve(llm, "off", movies).clusters == {}
    assert llm.usage().calls == 0


@pytest.mark.parametrize("mode", ["rules", "llm", "off"])
def test_coref_setting_names_a_resolver(mode: str) -> None:
    from kgenrich.pipeline.coref_llm import RESOLVERS
    from kgenrich.settings import ExtractSettings

    assert mode in RESOLVERS and ExtractSettings(coref=mode).coref == mode  # type: ignore[arg-type]


def test_coref_setting_defaults_to_rules_and_refuses_others() -> None:
    from pydantic import ValidationError

    from kgenrich.settings import ExtractSettings

    assert ExtractSettings().coref == "rules"
    with pytest.raises(ValidationError):
        ExtractSettings(coref="spacy")  # type: ignore[arg-type]
