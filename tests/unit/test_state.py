"""The incremental state store (kg/state.py) and the fingerprint/diff helpers
(pipeline/incremental.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from kgenrich.kg.records import Item, Mention, Ontology, Rejection, Relation, StageResult
from kgenrich.pipeline.llm.base import LLMAnswer, LLMRequest
from kgenrich.runs.fingerprints import (
    PROMPT_VERSIONS,
    diff_catalog,
    item_fingerprint,
    ontology_digest,
    stage_fingerprints,
)
from kgenrich.runs.outcomes import (
    FailureTracker,
    ItemResult,
    chunked,
    decode_result,
    encode_result,
    is_retryable,
    merge_results,
    pending,
    split_outcome,
)
from kgenrich.runs.plan import UPSTREAM_FAILED, plan_completion
from kgenrich.runs.state import DONE, FAILED, REMOVED, ChunkCommit, StateStore

ONTOLOGY = Ontology(item_type="Movie", types=("Movie", "Person"),
                    relations=(Relation(name="directed_by", domain="Movie", range="Person"),))
ITEM = Item(id="m1", title="Toy Story", text={"description": "Directed by John Lasseter."},
            attributes={"directed_by": ("John Lasseter",)})
SETTINGS = {"discover": {"max_per_item": 20}, "extract": {"max_per_item": 20},
            "complete": {"samples": 3}}


def _fps(item: Item = ITEM, **kw: object) -> dict[str, str]:
    args: dict[str, object] = {"model": "m", "ontology": ontology_digest(ONTOLOGY),
                               "settings": SETTINGS, **kw}
    return stage_fingerprints(item, **args)  # type: ignore[arg-type]


def test_state_round_trip_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s" / "state.sqlite"
    mention = Mention(item_id="m1", label="John Lasseter", type="Person", found_by="llm:m")
    rej = Rejection(stage="discover", reason="label not in text", item_id="m1", detail="x")
    result = ItemResult(kept=(mention,), rejected=(rej,))
    with StateStore.open(path) as st:
        run_id = st.begin_run("r1")
        st.commit_chunk("r1", ChunkCommit("discover", done={"m1": ("fp1", *encode_result(
            result))}, failed={"m2": ("fp2", "HTTP 500")}))
        st.commit_chunk("r1", ChunkCommit("discover", done={}, failed={"m2": ("fp2", "again")}))
        st.record_items("r1", {"m1": ("i1", DONE, None), "m2": ("i2", FAILED, "HTTP 500")})
        st.finish_run(run_id, status="done", summary={"n": 2})
    with StateStore.open(path) as st:
        stored = st.results("discover")
        assert set(stored) == {"m1"} and stored["m1"].fingerprint == "fp1"
        back = decode_result("discover", stored["m1"].kept, stored["m1"].rejected)
        assert back == result
        [fail] = st.failures()
        assert (fail.item_id, fail.error, fail.attempts) == ("m2", "again", 2)
        assert st.items()["m2"].status == FAILED
        assert st.known_items() == {"m1": "i1", "m2": "i2"}
        assert st.runs()[0]["summary"] == {"n": 2}
        # m2 succeeds later: its failure row goes, its result is stored
        st.commit_chunk("r2", ChunkCommit("discover", done={"m2": ("fp2", "[]", "[]")},
                                          failed={}))
        assert st.failures() == [] and set(st.fingerprints("discover")) == {"m1", "m2"}
        st.remove_items("r2", {"m1": ("item removed", json.dumps({"triples": [1]}))})
        assert "m1" not in st.results("discover") and "m1" not in st.known_items()
        assert st.items(include_removed=True)["m1"].status == REMOVED
        [ret] = st.retractions()
        assert ret["item_id"] == "m1" and ret["triples"] == [1] and ret["run"] == "r2"


def test_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.sqlite") as st:
        with pytest.raises(sqlite3.ProgrammingError):
            st.commit_chunk("r", ChunkCommit("extract", done={"a": ("fp", "[]", "[]"),
                                                              "b": ("fp", object(), "[]")},  # type: ignore[dict-item]
                                             failed={}))
        assert st.results("extract") == {}


def test_fingerprint_changes_with_item_prompt_model_and_settings_only() -> None:
    base = _fps()
    assert _fps() == base  # stable
    assert _fps(Item(**{**ITEM.model_dump(), "title": "Toy Story 2"})) != base
    changed = _fps(prompt_versions={**PROMPT_VERSIONS, "extract": "extract-test-changed"})
    assert changed["discover"] == base["discover"]
    assert changed["extract"] != base["extract"] and changed["complete"] != base["complete"]
    assert all(a != b for a, b in zip(_fps(model="other").values(), base.values(), strict=True))
    samples = _fps(settings={**SETTINGS, "complete": {"samples": 5}})
    assert samples["discover"] == base["discover"] and samples["complete"] != base["complete"]
    seeded = _fps(seed_facts=[("item/m1", "starring", "person/x")])
    assert seeded["extract"] == base["extract"] and seeded["complete"] != base["complete"]
    # attribute order in the source row does not matter: canonical JSON
    reordered = Item(id="m1", title="Toy Story", attributes={"directed_by": ("John Lasseter",)},
                     text={"description": "Directed by John Lasseter."})
    assert _fps(reordered) == base
    assert item_fingerprint(base) != item_fingerprint(samples)


def test_diff_pending_and_chunks() -> None:
    diff = diff_catalog({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "9", "d": "4"})
    assert diff.counts() == {"new": 1, "changed": 1, "unchanged": 1, "removed": 1}
    assert (diff.new, diff.changed, diff.unchanged, diff.removed) == (("d",), ("b",), ("a",),
                                                                      ("c",))
    items = [Item(id=i, title=i) for i in "abcde"]
    todo = pending(items, wanted=dict.fromkeys("abcde", "x"), stored={"a": "x", "b": "y"})
    assert [it.id for it in todo] == ["b", "c", "d", "e"]
    assert [len(c) for c in chunked(todo, 3)] == [3, 1]


def test_split_outcome_and_retryable_failures() -> None:
    ok = LLMAnswer(value=None, error="invalid answer after one repair: no JSON")
    down = LLMAnswer(value=None, error="endpoint looks down; circuit open")
    assert not is_retryable(ok) and is_retryable(down)
    assert not is_retryable(LLMAnswer(value=object()))  # type: ignore[arg-type]
    m = Mention(item_id="a", label="X", type="Person", found_by="spacy")
    result = StageResult(kept=(m,), rejected=(
        Rejection(stage="discover", reason="r", item_id="b"),
        Rejection(stage="discover", reason="loose")))
    out = split_outcome("discover", ["a", "b", "c"], result, {"c": "HTTP 500"})
    assert out.done["a"].kept == (m,) and out.done["b"].rejected[0].reason == "r"
    assert out.failed == {"c": "HTTP 500"} and "c" not in out.done
    assert out.unattributed[0].reason == "loose"
    items = [Item(id=i, title=i) for i in "cba"]
    merged = merge_results(items, out.done, stats=[out.stats])
    assert merged.kept == (m,) and [r.item_id for r in merged.rejected] == ["b"]

    class _Echo:
        model_id = "m"

        def complete_many(self, requests: list[LLMRequest[object]]) -> list[LLMAnswer[object]]:
            return [down if r.item_id == "x" else ok for r in requests]

    tracker = FailureTracker(_Echo())  # type: ignore[arg-type]
    reqs = [LLMRequest(messages=(), schema=object, item_id=i) for i in "xy"]  # type: ignore[arg-type]
    tracker.complete_many(reqs)
    assert tracker.failures == {"x": down.error}


def test_plan_completion() -> None:
    items = [Item(id=i, title=i) for i in "abcd"]
    plan = plan_completion(items, gaps={"a": [1], "b": [1], "d": [1]},
                               upstream_failed={"b": "HTTP 500"}, max_items=1)
    assert [it.id for it in plan.ask] == ["a"]
    assert plan.nothing_to_ask == ("c",) and plan.deferred == ("d",)
    assert plan.failed["b"].startswith(UPSTREAM_FAILED)


def test_plan_completion_asks_only_the_selected_items_and_defers_the_rest() -> None:
    items = [Item(id=i, title=i) for i in "abcde"]
    gaps = {"a": [1], "b": [1], "d": [1], "e": [1]}
    plan = plan_completion(items, gaps=gaps, upstream_failed={}, max_items=None,
                           only=["b", "e", "zz"])
    assert [it.id for it in plan.ask] == ["b", "e"]
    assert plan.deferred == ("a", "d") and plan.nothing_to_ask == ("c",)
    capped = plan_completion(items, gaps=gaps, upstream_failed={}, max_items=1, only=["b", "e"])
    assert [it.id for it in capped.ask] == ["b"] and capped.deferred == ("a", "d", "e")
