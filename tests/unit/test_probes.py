"""Calibration probes: which groups are masked (pipeline/probes.py), the per-relation thresholds
fitted on their labels (verification/probe_fit.py), and how the combiner applies them."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from kgenrich.kg.records import (
    Decision,
    Item,
    Ontology,
    Provenance,
    Relation,
    SourceKind,
    Triple,
)
from kgenrich.pipeline.probes import choose_probes
from kgenrich.pipeline.verify import verify_triples
from kgenrich.verification.combiner import Combiner
from kgenrich.verification.confidence import ConfidenceFeatures
from kgenrich.verification.probe_fit import (
    ProbeLabel,
    describe,
    fit_probe_calibration,
    pessimistic_threshold,
)
from kgenrich.verification.scorers import FunctionScorer

ONT = Ontology(
    item_type="Movie", types=("Movie", "Person", "Genre"), closed_types=("Genre",),
    relations=(
        Relation(name="directed_by", domain="Movie", range="Person", functional=True),
        Relation(name="starring", domain="Movie", range="Person"),
        Relation(name="has_genre", domain="Movie", range="Genre"),
    ),
)
ITEMS = [Item(id=str(i), title=f"Film {i}") for i in range(30)]
ENTITY = {it.id: f"item/{it.id}" for it in ITEMS}


def _t(h: str, r: str, t: str, source: SourceKind = SourceKind.SEED) -> Triple:
    return Triple(head=h, relation=r, tail=t, provenance=Provenance(source=source))


def _trusted() -> list[Triple]:
    out = []
    for i, it in enumerate(ITEMS[:20]):  # items 20..29 have no facts
        head = ENTITY[it.id]
        out += [_t(head, "directed_by", f"p{i % 5}"), _t(head, "has_genre", f"g{i % 3}"),
                _t(head, "has_genre", f"g{(i + 1) % 3}")]
        if i % 2:
            out.append(_t(head, "starring", f"a{i}"))
    return out


def _constant(p: float) -> FunctionScorer:
    return FunctionScorer(name="test", knows_fn=lambda h, r, t: True,
                          kge_fn=lambda ts: np.zeros(len(ts)),
                          probability_fn=lambda keys: np.full(len(keys), p))


def _probes(**kw: object) -> object:
    args: dict[str, object] = dict(trusted=_trusted(), ontology=ONT, item_entity=ENTITY,
                                   relations=None, exclude=set(), n_items=8, mask_fraction=0.5,
                                   seed=0)
    args.update(kw)
    return choose_probes(ITEMS, **args)  # type: ignore[arg-type]


def test_probes_mask_half_of_each_items_groups_and_only_items_with_facts() -> None:
    p = _probes()
    assert len(p.items) == 8
    assert all(int(it.id) < 20 for it in p.items)
    for it in p.items:
        head = ENTITY[it.id]
        n_groups = len({t.relation for t in _trusted() if t.head == head})
        masked = [r for (h, r) in p.masked if h == head]
        assert len(masked) == max(1, round(0.5 * n_groups))
        assert [r.name for r in p.gaps[it.id]] == [
            r.name for r in ONT.relations if r.name in masked]  # ontology order
    # the answer key is every trusted tail of a masked group, and those leave the visible graph
    visible = {t.key for t in p.visible(_trusted())}
    for (h, r), tails in p.masked.items():
        assert tails == {t.tail for t in _trusted() if t.head == h and t.relation == r}
        assert not any((h, r, tail) in visible for tail in tails)
    assert len(visible) == len(_trusted()) - len(p.masked_keys)


def test_probe_choice_is_stable_when_other_items_are_excluded() -> None:
    # a hash order: excluding items changes nothing about the others (LLM cache hits)
    full = _probes(n_items=20)
    excluded = {full.items[0].id, full.items[3].id}
    fewer = _probes(n_items=20, exclude=excluded)
    assert [it.id for it in fewer.items] == [it.id for it in full.items if it.id not in excluded]
    assert {k: v for k, v in full.masked.items() if k[0] not in {f"item/{i}" for i in excluded}} \
        == dict(fewer.masked)
    assert [it.id for it in _probes(seed=1).items] != [it.id for it in _probes().items]


def test_probes_respect_the_completion_relations() -> None:
    p = _probes(relations=("has_genre",))
    assert {r for (_, r) in p.masked} == {"has_genre"}


def test_is_correct_against_the_masked_tails() -> None:
    p = _probes()
    (head, rel), tails = next(iter(p.masked.items()))
    assert p.is_correct(_t(head, rel, sorted(tails)[0], SourceKind.COMPLETED))
    assert not p.is_correct(_t(head, rel, "nobody", SourceKind.COMPLETED))


def test_pessimistic_threshold_counts_one_extra_wrong_answer() -> None:
    # 9 right at the top reach 9/10 = 0.9; one right alone (1/2) does not
    scored = [(0.9 + i / 100, True) for i in range(9)] + [(0.5, False), (0.4, True)]
    at, precision, n, right = pessimistic_threshold(scored, target_precision=0.9)
    assert at == pytest.approx(0.9) and precision == pytest.approx(0.9) and (n, right) == (9, 9)
    at, *_ = pessimistic_threshold([(0.99, True)], target_precision=0.9)
    assert math.isinf(at)
    # ties share a fate: a wrong answer at the same confidence cannot be left out
    tied = [(0.8, True)] * 9 + [(0.8, False)]
    assert math.isinf(pessimistic_threshold(tied, target_precision=0.9)[0])


def _labels(rel: str, value: float, ok: bool, n: int, *, half: int | None = None,
            **signals: float) -> list[ProbeLabel]:
    """``n`` probe labels of ``rel``, each of its own item (of the given held-out half)."""
    ids = (f"{rel}-{value}-{ok}-{i}" for i in range(10_000))
    chosen = [i for i in ids if half is None or zlib.crc32(i.encode()) & 1 == half][:n]
    return [ProbeLabel(relation=rel, item_id=i, correct=ok,
                       signals={"confidence": value, **signals}) for i in chosen]


def test_fit_per_relation_with_a_minimum_and_an_isotonic_probability() -> None:
    rows = (_labels("has_genre", 0.9, True, 12) + _labels("has_genre", 0.3, False, 6)
            + _labels("directed_by", 0.95, False, 10) + _labels("starring", 0.9, True, 2))
    fit = fit_probe_calibration(rows, target_precision=0.9, min_probes=5)
    assert set(fit) == {"has_genre", "directed_by"}  # starring: 2 < 5 probes
    g = fit["has_genre"]
    assert g.accept_at == pytest.approx(0.9) and (g.n, g.correct) == (18, 12)
    assert g.signal == "confidence"
    assert g.probability(0.9) == pytest.approx(1.0) and g.probability(0.3) == pytest.approx(0.0)
    assert math.isinf(fit["directed_by"].accept_at)  # never right: never auto-accepted
    assert fit["directed_by"].summary()["accept_at"] is None


def test_each_relation_accepts_on_the_signal_that_ranks_its_probes() -> None:
    # the KGE probability separates right from wrong; the confidence (x a noisy agreement)
    # puts wrong answers on top
    rows = (_labels("has_genre", 0.5, True, 20, kge_probability=0.95, agreement=0.5)
            + _labels("has_genre", 0.9, False, 5, kge_probability=0.6, agreement=1.0)
            + _labels("directed_by", 0.9, True, 20, kge_probability=0.3, agreement=1.0))
    fit = fit_probe_calibration(rows, target_precision=0.9, min_probes=5)
    g = fit["has_genre"]
    assert g.signal == "kge_probability" and g.accept_at == pytest.approx(0.95)
    assert (g.accepted, g.accepted_correct) == (20, 20)
    assert g.value(confidence=0.2, kge_probability=0.96, agreement=0.1) == pytest.approx(0.96)
    assert math.isnan(g.value(confidence=0.2, kge_probability=None, agreement=1.0))
    assert g.probability(0.95) == pytest.approx(1.0) and g.probability(0.6) == pytest.approx(0.0)
    # all three signals accept all 20: the tie goes to the combiner's confidence
    assert fit["directed_by"].signal == "confidence"
    # each half alone chooses the same, and what it accepts of the other half is right
    assert g.held_out_accepted == g.held_out_correct == 20 and not g.overruled
    assert "at kge_probability >= 0.950" in describe(fit)
    # a user may leave signals out, and must name real ones
    only = fit_probe_calibration(rows, target_precision=0.9, min_probes=5,
                                 signals=("confidence",))
    assert math.isinf(only["has_genre"].accept_at)
    with pytest.raises(ValueError, match="unknown probe signals"):
        fit_probe_calibration(rows, target_precision=0.9, min_probes=5, signals=("logprob",))


def test_a_threshold_the_other_half_contradicts_accepts_nothing() -> None:
    # half 0: 10 right at 0.9. half 1: 30 right at 0.95 and 5 wrong at 0.92. Pooled, 0.95
    # reaches 30/31; but half 0 alone would accept from 0.9, taking half 1's wrong answers:
    # 30 of 35 held out right < 0.9, so the relation is not auto-accepted
    rows = (_labels("has_genre", 0.9, True, 10, half=0)
            + _labels("has_genre", 0.95, True, 30, half=1)
            + _labels("has_genre", 0.92, False, 5, half=1))
    pooled = fit_probe_calibration(rows, target_precision=0.85, min_probes=5)["has_genre"]
    assert pooled.accept_at == pytest.approx(0.9) and not pooled.overruled
    g = fit_probe_calibration(rows, target_precision=0.9, min_probes=5)["has_genre"]
    assert (g.held_out_accepted, g.held_out_correct) == (35, 30)
    assert math.isinf(g.accept_at) and "30 of 35" in g.overruled
    assert g.summary()["overruled"] == g.overruled and "30 of 35" in describe({"g": g})


def test_combiner_uses_the_relations_threshold_for_completions_only() -> None:
    fit = fit_probe_calibration(_labels("has_genre", 0.9, True, 12)
                                + _labels("has_genre", 0.5, False, 4)
                                + _labels("directed_by", 0.9, False, 6),
                                target_precision=0.9, min_probes=5)
    comb = Combiner(model=None, accept_at=0.6, review_from=0.4, name="rule", calibration=fit)

    def feats(rel: str, extracted: bool = False) -> ConfidenceFeatures:
        return ConfidenceFeatures(relation=rel, kge_probability=0.7, agreement=1.0,
                                  extracted=extracted)

    assert comb.gate(feats("has_genre"), 0.7) == ("confidence", 0.7, pytest.approx(0.9))
    assert math.isinf(comb.gate(feats("directed_by"), 0.7)[2])
    assert comb.gate(feats("starring"), 0.7)[2] == 0.6  # not calibrated: the base rule
    assert comb.gate(feats("has_genre", extracted=True), 0.7)[2] == 0.6


def test_verify_triples_accepts_at_the_calibrated_threshold() -> None:
    fit = fit_probe_calibration(_labels("has_genre", 0.8, True, 12)
                                + _labels("directed_by", 0.8, False, 6),
                                target_precision=0.9, min_probes=5)
    comb = Combiner(model=None, accept_at=0.6, review_from=0.4, name="rule", calibration=fit)
    cands = [_t("item/0", "has_genre", "g2", SourceKind.COMPLETED),
             _t("item/0", "directed_by", "p9", SourceKind.COMPLETED)]
    types = {"item/0": "Movie", "g2": "Genre", "p9": "Person"}
    out = verify_triples(cands, ontology=ONT, entity_types=types,
                         scorer=_constant(0.8), combiner=comb)
    by_rel = {t.relation: t for t in out.kept}
    assert by_rel["has_genre"].provenance.decision is Decision.ACCEPTED
    assert by_rel["has_genre"].provenance.scores["probe_probability"] == pytest.approx(1.0)
    # 0.8 would pass the rule's 0.6, but directed_by's probes were never right
    assert by_rel["directed_by"].provenance.decision is Decision.REVIEW


def test_verify_triples_accepts_on_the_signal_the_probes_chose() -> None:
    # has_genre's probes chose the KGE probability from 0.75: a genre the model named in only
    # one of three samples (confidence 0.8 x 1/3) is accepted all the same
    fit = fit_probe_calibration(
        _labels("has_genre", 0.2, True, 12, kge_probability=0.75, agreement=0.3)
        + _labels("has_genre", 0.6, False, 6, kge_probability=0.4, agreement=1.0),
        target_precision=0.9, min_probes=5)
    assert fit["has_genre"].signal == "kge_probability"
    comb = Combiner(model=None, accept_at=0.6, review_from=0.1, name="rule", calibration=fit)
    weak = Triple(head="item/0", relation="has_genre", tail="g2", provenance=Provenance(
        source=SourceKind.COMPLETED, scores={"agreement": 1 / 3, "samples": 3}))
    types = {"item/0": "Movie", "g2": "Genre"}
    out = verify_triples([weak], ontology=ONT, entity_types=types, scorer=_constant(0.8),
                         combiner=comb)
    prov = out.kept[0].provenance
    assert prov.decision is Decision.ACCEPTED and "kge_probability 0.80 >= 0.75" in prov.reason
    assert prov.scores["confidence"] == pytest.approx(0.8 / 3)
    # below the chosen signal's threshold: the confidence decides review or rejection
    low = verify_triples([weak], ontology=ONT, entity_types=types, scorer=_constant(0.7),
                         combiner=comb).kept[0].provenance
    assert low.decision is Decision.REVIEW and low.scores["probe_probability"] < 1.0


# ----------------------------------------------------------------- asked through the run code


def _graph() -> object:
    from kgenrich.kg.ids import mint_entity_id
    from kgenrich.kg.records import Entity
    from kgenrich.pipeline.resolve import EntityIndex
    from kgenrich.runs.graph import BaseGraph

    people = [f"Person {i}" for i in range(5)]
    genres = ["Comedy", "Drama", "Horror"]
    ents = [Entity(id=mint_entity_id("Person", p), label=p, type="Person") for p in people]
    ents += [Entity(id=mint_entity_id("Genre", g), label=g, type="Genre") for g in genres]
    items = [Item(id=str(i), title=f"Film {i}") for i in range(40)]
    ents += [Entity(id=f"item/{it.id}", label=it.title, type="Movie") for it in items]
    base = []
    for i, it in enumerate(items):
        base += [_t(f"item/{it.id}", "has_genre", mint_entity_id("Genre", genres[i % 3])),
                 _t(f"item/{it.id}", "directed_by", mint_entity_id("Person", people[i % 5]))]
    return BaseGraph(ontology=ONT, items=items, seed=None, links={},
                     item_entity={it.id: f"item/{it.id}" for it in items},
                     index=EntityIndex.build(ents), stages={}, base=base)


def test_probes_asked_like_gaps_calibrate_each_relation_and_skip_the_hopeless_one() -> None:
    import json
    import re

    from kgenrich.pipeline.llm.fake import FakeLLM
    from kgenrich.runs.probes import ask_probes, skip_relations
    from kgenrich.runs.verification import calibrate_run
    from kgenrich.settings import Settings

    graph = _graph()
    genres = ["Comedy", "Drama", "Horror"]
    asked: list[str] = []

    def responder(messages: object, schema: object) -> str:
        user = messages[-1]["content"]  # type: ignore[index]
        i = int(re.search(r"Film (\d+)", user).group(1))  # type: ignore[union-attr]
        missing = re.findall(r"Missing relation: (\w+)", user)
        asked.append(user)
        # a masked fact is never shown: the prompt has no line for a missing relation
        assert not any(f"\n{rel}: " in user for rel in missing)
        # knows every genre, never the director
        return json.dumps({r: [genres[i % 3]] if r == "has_genre" else [f"Person {(i + 1) % 5}"]
                           for r in missing})

    settings = Settings(llm={"backend": "fake", "cache_dir": None},
                        complete={"samples": 1, "items": ("0", "1")},
                        verify={"probe_items": 30, "probe_max_share": 1.0,
                                "probe_mask_fraction": 1.0})
    llm = FakeLLM(responder)  # type: ignore[arg-type]
    run = ask_probes(graph, llm=llm, settings=settings)
    assert run is not None and len(run.probes.items) == 30 and len(asked) == 30
    # counted as their own stage, not as the completion of real gaps
    assert llm.usage().by_stage["calibration probes"]["calls"] == 30
    assert "complete" not in llm.usage().by_stage
    assert not {"0", "1"} & {it.id for it in run.probes.items}  # never an asked item
    cal = calibrate_run(graph, run, scorer=_constant(0.8),  # type: ignore[arg-type]
                        settings=settings.verify, confidence_model=None)
    assert cal is not None
    assert cal.by_relation["has_genre"].accept_at == pytest.approx(0.8)
    assert cal.by_relation["has_genre"].correct == 30
    assert math.isinf(cal.by_relation["directed_by"].accept_at)
    assert skip_relations(cal, settings) == {"directed_by"}
    # calibration_probes.jsonl: one row per labelled answer, with labels, not ids
    from kgenrich.runs.probes import probe_rows
    rows = probe_rows(cal)
    assert len(rows) == len(cal.labelled)
    genre = [r for r in rows if r["relation"] == "has_genre"]
    assert genre and all(r["correct"] and r["tail"] in r["masked"] for r in genre)
    assert all(r["kge_probability"] == pytest.approx(0.8) for r in genre)
    directors = [r for r in rows if r["relation"] == "directed_by"]
    assert directors and not any(r["correct"] for r in directors)
    assert all(r["tail"].startswith("Person ") for r in directors)
    off = settings.model_copy(update={"complete": settings.complete.model_copy(
        update={"skip_unreachable": False})})
    assert skip_relations(cal, off) == frozenset()
    none = settings.model_copy(update={"verify": settings.verify.model_copy(
        update={"calibration": "off"})})
    assert ask_probes(graph, llm=FakeLLM(responder), settings=none) is None  # type: ignore[arg-type]
