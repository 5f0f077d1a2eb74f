"""Stage functions called directly with a fake LLM: parsing, grounding, agreement, accounting."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from kgenrich.kg.records import (
    Decision,
    Entity,
    Item,
    Ontology,
    Provenance,
    Relation,
    SourceKind,
    Triple,
)
from kgenrich.pipeline.candidates import to_triples
from kgenrich.pipeline.catalog import catalog_triples, item_entities
from kgenrich.pipeline.complete import complete_tails, missing_relations
from kgenrich.pipeline.discover import discover_entities, fallback_nlp
from kgenrich.pipeline.evaluate import precision_recall
from kgenrich.pipeline.extract import extract_relations
from kgenrich.pipeline.llm.base import Message
from kgenrich.pipeline.llm.fake import FakeLLM
from kgenrich.pipeline.resolve import EntityIndex, resolve
from kgenrich.pipeline.verify import verify_triples
from kgenrich.verification.combiner import Combiner, rule_confidence
from kgenrich.verification.scorers import FunctionScorer

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
# context and chunk budget for stage calls: the test texts fit one chunk
BUDGET = {"context_tokens": 4096, "max_chunks": 4}
ALIEN = Item(id="1", title="Alien", text={"description": "A 1979 film directed by Ridley Scott."},
             attributes={"has_genre": ("Horror",)})


def test_catalog_triples_resolve_values_and_reject_unknown_relations() -> None:
    item = ALIEN.model_copy(update={"attributes": {"has_genre": ("Horror", "horror "),
                                                   "budget": ("11M",)}})
    index = EntityIndex.build(item_entities([item], ontology=ONT))
    res = catalog_triples([item], ontology=ONT, index=index)
    assert {t.key for t in res.kept} == {("item/1", "has_genre", "genre/horror")}
    assert len(res.kept) == 2  # same entity twice; dedupe happens at assembly, not silently here
    assert [r.reason for r in res.rejected] == ["relation not in ontology"]
    assert all(t.provenance.decision is Decision.TRUSTED for t in res.kept)


def test_resolve_links_aliases_and_never_merges_types() -> None:
    index = EntityIndex.build([
        Entity(id="person/ridley-scott", label="Ridley Scott", type="Person",
               aliases=("Sir Ridley Scott",)),
    ])
    assert resolve("sir ridley  SCOTT", "Person", index=index,
                   source=SourceKind.COMPLETED).entity.id == "person/ridley-scott"
    other = resolve("Ridley Scott", "Genre", index=index, source=SourceKind.COMPLETED)
    assert other.is_new and other.entity.id == "genre/ridley-scott"
    clash = resolve("Ridley-Scott!", "Person", index=index, source=SourceKind.COMPLETED)
    # A different label whose slug collides gets its own id instead of merging.
    assert clash.entity.id in {"person/ridley-scott~2", "person/ridley-scott"}


def _responder(messages: Sequence[Message], schema: dict[str, Any]) -> str:
    system, user = messages[0]["content"], messages[-1]["content"]
    if "named entities" in system:
        return json.dumps({"entities": [{"label": "Ridley Scott", "type": "Person"},
                                        {"label": "Giger", "type": "Person"},
                                        {"label": "Scott", "type": "Spaceship"}]})
    if "extract facts" in system:
        return json.dumps({"facts": [
            {"relation": "directed_by", "tail": "Ridley Scott"},
            {"relation": "has_genre", "tail": "Horror"},
            {"relation": "written_by", "tail": "Dan O'Bannon"},
        ]})
    if "directed_by" in user:
        return '{"tails": ["Ridley Scott"]}'
    return "Sure! ```json\n{\"tails\": [\"Sigourney Weaver\", \"Alien\"]}\n```"


def test_discover_keeps_grounded_typed_mentions_only() -> None:
    llm = FakeLLM(_responder)
    res = discover_entities([ALIEN], llm=llm, ontology=ONT, nlp=None, max_per_item=10,
                            **BUDGET)
    assert [(m.label, m.type) for m in res.kept] == [("Ridley Scott", "Person")]
    assert sorted(res.rejection_counts()) == ["label not in text", "type not in ontology"]
    assert res.stats.llm_calls == 1 and res.stats.prompt_tokens > 0


def test_discover_with_entity_ruler_fallback() -> None:
    nlp = fallback_nlp({"Person": ["Ridley Scott"]})
    res = discover_entities([ALIEN], llm=None, ontology=ONT, nlp=nlp, max_per_item=10,
                            **BUDGET)
    assert [(m.label, m.type, m.found_by) for m in res.kept] == [("Ridley Scott", "Person",
                                                                   "spacy")]


def test_extract_requires_tail_in_text_and_ontology_relation() -> None:
    res = extract_relations([ALIEN], llm=FakeLLM(_responder), ontology=ONT, max_per_item=10,
                            clusters={}, **BUDGET)
    assert [(c.relation, c.tail_label) for c in res.kept] == [("directed_by", "Ridley Scott")]
    assert res.rejection_counts() == {"tail not in text": 1, "relation not in ontology": 1}


def test_extract_records_malformed_answers_instead_of_dropping() -> None:
    llm = FakeLLM(["{\"facts\": [{\"relation\": ", "still not json"])
    res = extract_relations([ALIEN], llm=llm, ontology=ONT, max_per_item=10, clusters={},
                            **BUDGET)
    assert res.kept == ()
    assert res.rejection_counts() == {"llm answer invalid": 1}


def test_complete_asks_only_for_gaps_and_measures_agreement() -> None:
    triples = [Triple(head="item/1", relation="has_genre", tail="genre/horror",
                      provenance=Provenance(source=SourceKind.CATALOG))]
    gaps = missing_relations([ALIEN], triples=triples, ontology=ONT, relations=None,
                             item_entity={"1": "item/1"})
    assert [r.name for r in gaps["1"]] == ["directed_by", "starring"]
    answers = iter(['{"tails": ["Ridley Scott"]}', '{"tails": ["Ridley Scott"]}',
                    '{"tails": ["James Cameron"]}'])

    def responder(messages: Sequence[Message], schema: dict[str, Any]) -> str:
        if "directed_by" in messages[-1]["content"]:
            return next(answers)
        return '{"tails": ["Sigourney Weaver", "Alien"]}'

    llm = FakeLLM(responder)
    res = complete_tails([ALIEN], llm=llm, ontology=ONT, gaps=gaps, facts={},
                         labels_by_type={}, samples=3, temperature=0.7, max_candidates=10)
    got = {(c.relation, c.tail_label): round(c.agreement, 2) for c in res.kept}
    assert got == {("directed_by", "Ridley Scott"): 0.67, ("directed_by", "James Cameron"): 0.33,
                   ("starring", "Sigourney Weaver"): 1.0}
    assert res.rejection_counts() == {"answer is the item itself": 3}
    assert res.stats.llm_calls == 6


def test_complete_restricts_closed_vocabularies() -> None:
    gaps = {"1": [ONT.relations[2]]}
    seen_schemas: list[dict[str, Any]] = []

    def responder(messages: Sequence[Message], schema: dict[str, Any]) -> str:
        seen_schemas.append(schema)
        return '{"tails": ["Horror", "Space Opera"]}'

    res = complete_tails([ALIEN], llm=FakeLLM(responder), ontology=ONT, gaps=gaps, facts={},
                         labels_by_type={"Genre": ["Horror", "Comedy"]}, samples=1,
                         temperature=0.0, max_candidates=10)
    assert [c.tail_label for c in res.kept] == ["Horror"]
    assert res.rejection_counts() == {"answer not among choices": 1}
    assert "Comedy" in json.dumps(seen_schemas[0])


def test_complete_open_types_get_hints_not_restrictions() -> None:
    gaps = {"1": [ONT.relations[0]]}
    prompts: list[str] = []

    def responder(messages: Sequence[Message], schema: dict[str, Any]) -> str:
        prompts.append(messages[-1]["content"])
        assert "enum" not in json.dumps(schema)
        return '{"tails": ["Ridley Scott"]}'

    res = complete_tails([ALIEN], llm=FakeLLM(responder), ontology=ONT, gaps=gaps, facts={},
                         labels_by_type={"Person": ["James Cameron"]}, samples=1,
                         temperature=0.0, max_candidates=10)
    assert [c.tail_label for c in res.kept] == ["Ridley Scott"]
    assert "James Cameron" in prompts[0]


def test_cache_makes_rerun_free(tmp_path: Any) -> None:
    gaps = {"1": [ONT.relations[0]]}
    kwargs: dict[str, Any] = dict(ontology=ONT, gaps=gaps, facts={}, labels_by_type={},
                                  samples=2, temperature=0.7, max_candidates=0)
    first = FakeLLM(_responder, cache_dir=tmp_path)
    complete_tails([ALIEN], llm=first, **kwargs)
    second = FakeLLM(_responder, cache_dir=tmp_path)
    res = complete_tails([ALIEN], llm=second, **kwargs)
    assert second.raw_calls == [] and res.stats.llm_calls == 0 and res.stats.cache_hits == 2


def _cand(tail: str, *, agreement: float, source: SourceKind = SourceKind.COMPLETED) -> Triple:
    return Triple(head="item/1", relation="directed_by", tail=tail,
                  provenance=Provenance(source=source, item_id="1",
                                        scores={"agreement": agreement},
                                        evidence="x" if source is SourceKind.EXTRACTED else None))


def test_verify_routes_schema_unknown_and_confidence() -> None:
    types = {"item/1": "Movie", "person/a": "Person", "person/b": "Person", "person/new": "Person",
             "genre/horror": "Genre"}
    known = {"item/1", "person/a", "person/b", "genre/horror"}
    cands = [_cand("person/a", agreement=1.0), _cand("person/b", agreement=0.34),
             _cand("person/new", agreement=1.0), _cand("genre/horror", agreement=1.0)]
    def score(ts: Sequence[tuple[str, str, str]]) -> np.ndarray:
        return np.array([5.0 if t == "person/a" else -5.0 for _, _, t in ts])

    scorer = FunctionScorer(
        name="test", knows_fn=lambda h, r, t: h in known and t in known, kge_fn=score,
        probability_fn=lambda keys: 1 / (1 + np.exp(-score(keys))))
    res = verify_triples(
        cands, ontology=ONT, entity_types=types, scorer=scorer,
        combiner=Combiner.rule((0.4, 0.6)),
    )
    by_tail = {t.tail: t.provenance for t in res.kept}
    assert len(res.kept) == 4  # nothing dropped
    assert by_tail["person/a"].decision is Decision.ACCEPTED
    assert by_tail["person/b"].decision is Decision.REJECTED
    assert by_tail["person/new"].decision is Decision.REVIEW  # unseen entity never auto-accepts
    assert by_tail["genre/horror"].decision is Decision.REJECTED
    assert "tail type Genre" in by_tail["genre/horror"].reason
    assert by_tail["person/a"].scores["kge_probability"] > 0.99
    assert res.rejection_counts() == {"low confidence": 1, "schema: tail type Genre": 1}


def test_rule_confidence_caps_unverified() -> None:
    assert rule_confidence(kge_probability=None, agreement=1.0, evidence=True) == 0.5
    assert rule_confidence(kge_probability=0.9, agreement=0.5, evidence=False) == pytest.approx(
        0.45)
    assert rule_confidence(kge_probability=0.2, agreement=1.0, evidence=True) == pytest.approx(
        0.6)


def test_to_triples_links_existing_and_counts_minted() -> None:
    index = EntityIndex.build([Entity(id="person/ridley-scott", label="Ridley Scott",
                                      type="Person")])
    res = extract_relations([ALIEN], llm=FakeLLM(_responder), ontology=ONT, max_per_item=10,
                            clusters={}, **BUDGET)
    triples, minted = to_triples(res.kept, index=index, source=SourceKind.EXTRACTED)
    assert [t.key for t in triples] == [("item/1", "directed_by", "person/ridley-scott")]
    assert minted == set()
    # the evidence is the sentence of the text that holds the tail
    assert triples[0].provenance.evidence == "A 1979 film directed by Ridley Scott."


def test_precision_recall_against_key() -> None:
    triples = [_cand("person/a", agreement=1.0), _cand("person/b", agreement=1.0)]
    pr = precision_recall(triples, key=[("1", "directed_by", "A"), ("2", "directed_by", "C")],
                          labels={"person/a": "A", "person/b": "B"},
                          head_of_item={"1": "item/1", "2": "item/2"})
    assert (pr.proposed, pr.correct, pr.key_size) == (2, 1, 2)
    assert pr.precision == 0.5 and pr.recall == 0.5


def test_review_queue_round_trip_and_apply() -> None:
    from kgenrich.pipeline.review import ReviewRow, apply_review, review_queue

    t_review = _cand("person/a", agreement=1.0).with_provenance(decision=Decision.REVIEW,
                                                                  scores={"confidence": 0.5})
    t_acc = _cand("person/b", agreement=1.0).with_provenance(decision=Decision.ACCEPTED)
    rows = review_queue([t_review, t_acc], labels={"person/a": "A"})
    assert [r.tail_label for r in rows] == ["A"] and rows[0].verdict == ""
    back = [ReviewRow.model_validate_json(r.model_dump_json()) for r in rows]
    assert back == rows
    marked = [back[0].model_copy(update={"verdict": "reject", "reviewer": "ann"})]
    out, counts = apply_review([t_review, t_acc], rows=marked)
    assert out[0].provenance.decision is Decision.REJECTED
    assert out[0].provenance.accepted_by == "review:ann"
    assert out[1] == t_acc and counts["rejected by review"] == 1
    again = review_queue([t_review], labels={}, previous={r.key: r for r in marked})
    assert again[0].verdict == "reject"  # a verdict survives until it is applied
