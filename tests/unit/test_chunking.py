"""Text helpers and chunking: spans found as `occurs_in` matches them, evidence that always holds
its tail, chunks that fit their budget, cover the text and follow sentence boundaries."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from kgenrich.pipeline.chunking import (
    NO_ROOM,
    TRUNCATED,
    chunk_text,
    estimate_tokens,
    plan_item_chunks,
)
from kgenrich.pipeline.text import (
    MAX_EVIDENCE_CHARS,
    evidence_around,
    find_span,
    occurs_in,
    sentence_spans,
)

HYPO = settings(max_examples=200, deadline=None)
# words, sentence ends, line breaks, non-ASCII and a casefold that changes length ("ß")
_pieces = st.sampled_from(["Ridley", "Scott", "scott", "Straße", "é", "东京", "a", "film",
                           ". ", "! ", "? ", "\n", "  ", " ", ",", "\"", "e.g. ", "1979"])
texts = st.lists(_pieces, min_size=1, max_size=120).map("".join)


def test_find_span_ignores_case_and_whitespace_and_prefers_whole_words() -> None:
    text = "Scotty met   Ridley\nSCOTT in Straße 5."
    assert find_span("ridley scott", text) == (13, 25)
    assert text[slice(*find_span("Scott", text) or (0, 0))] == "SCOTT"  # not inside "Scotty"
    assert find_span("Scot", text) == (0, 4)  # no whole-word match: the first one
    assert find_span("STRASSE", text) == (29, 35)  # casefold: "ß" is "ss"
    assert find_span("Nolan", text) is None and find_span("  ", text) is None


def test_sentences_split_at_end_marks_and_line_breaks_only() -> None:
    text = 'It opens. "Who?" she asks! See e.g. the end\nNext line?  Last'
    got = [text[s:e] for s, e in sentence_spans(text)]
    assert got == ["It opens.", '"Who?" she asks!', "See e.g. the end", "Next line?", "Last"]


def test_evidence_is_the_sentence_or_a_window_of_a_long_one() -> None:
    text = "A 1979 film. It was directed by Ridley Scott. It is long."
    assert evidence_around(text, *find_span("Ridley Scott", text) or (0, 0)) == (
        "It was directed by Ridley Scott.")
    long = " ".join(["word"] * 200) + " Ridley Scott " + " ".join(["word"] * 200) + "."
    ev = evidence_around(long, *find_span("Ridley Scott", long) or (0, 0))
    assert "Ridley Scott" in ev and len(ev) <= MAX_EVIDENCE_CHARS
    assert ev.startswith("word") and ev.endswith("word")  # cut between words


@HYPO
@given(text=texts, data=st.data())
def test_evidence_holds_the_tail_and_occurs_in_the_text(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    tail = text[start:end]
    span = find_span(tail, text)
    if not tail.strip():
        assert span is None
        return
    assert span is not None
    evidence = evidence_around(text, *span)
    assert occurs_in(tail, evidence) and occurs_in(evidence, text)
    assert occurs_in(text[span[0]:span[1]], tail) and occurs_in(tail, text[span[0]:span[1]])


@HYPO
@given(text=texts, max_tokens=st.integers(8, 80))
def test_chunks_fit_cover_the_text_and_stay_in_order(text: str, max_tokens: int) -> None:
    chunks = chunk_text(text, max_tokens=max_tokens)
    for c in chunks:
        assert c.text == text[c.start:c.end] and c.text.strip()
        assert estimate_tokens(json.dumps(c.text, ensure_ascii=False)) <= max_tokens
    assert [c.start for c in chunks] == sorted({c.start for c in chunks})  # moving forward
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_chunks_follow_sentences_and_overlap_by_a_sentence() -> None:
    sentences = [f"Sentence {i} tells what happens in scene {i}." for i in range(200)]
    text = " ".join(sentences)
    chunks = chunk_text(text, max_tokens=400)  # the overlap may take 40 tokens: a sentence
    assert len(chunks) > 5
    starts = {s for s, _ in sentence_spans(text)}
    ends = {e for _, e in sentence_spans(text)}
    assert all(c.start in starts and c.end in ends for c in chunks)
    for prev, nxt in zip(chunks, chunks[1:], strict=False):
        assert prev.start < nxt.start < prev.end  # overlap, and progress
        assert prev.end - nxt.start < 0.25 * len(prev.text)  # small


def test_estimate_counts_digits_punctuation_and_non_ascii_fully() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("1979") == 4  # digits are one token each
    assert estimate_tokens("东京") == 6  # one per UTF-8 byte
    assert estimate_tokens("abcdef") == 2


def test_plan_reports_what_a_budget_leaves_unread() -> None:
    text = " ".join(f"Sentence {i} tells what happens in scene {i}." for i in range(200))
    plan, rejected = plan_item_chunks(text, item_id="m1", stage="extract", budget_tokens=200,
                                      max_chunks=3)
    assert len(plan.chunks) == 3 and plan.total > 3 and plan.dropped == plan.total - 3
    [rej] = rejected
    assert (rej.reason, rej.item_id, rej.stage) == (TRUNCATED, "m1", "extract")
    assert f"read 3 of {plan.total} chunks" in rej.detail
    assert str(len(text) - plan.chunks[-1].end) in rej.detail
    whole, none = plan_item_chunks(text, item_id="m1", stage="extract", budget_tokens=200,
                                   max_chunks=plan.total)
    assert none == [] and whole.dropped == 0
    empty, [no_room] = plan_item_chunks(text, item_id="m1", stage="extract", budget_tokens=10,
                                        max_chunks=3)
    assert empty.chunks == () and no_room.reason == NO_ROOM and "llm.embedded_ctx" in no_room.detail
