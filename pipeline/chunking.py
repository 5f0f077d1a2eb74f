"""An item's text in chunks that fit the model's context: split on sentence boundaries with a
small overlap, at most `max_chunks` per item; what a budget leaves unread is a recorded
rejection ("text truncated"), never dropped silently."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from kgenrich.kg.records import Item, Rejection
from kgenrich.pipeline.llm.base import LLMRequest, Message
from kgenrich.pipeline.text import sentence_spans

#: Chat-template tokens around the messages (role markers, separators) and the assistant turn.
TEMPLATE_TOKENS = 32
#: Below this many tokens for the text, a chunk would hold a sentence or two: not worth a call.
MIN_TEXT_TOKENS = 64
#: Share of a chunk's budget that may repeat the end of the previous chunk.
OVERLAP_SHARE = 0.1
TRUNCATED = "text truncated"
NO_ROOM = "prompt leaves no room for text"
_WORD = re.compile(r"\S+")


def _ascii_weights() -> bytes:
    # sixths of a token per ASCII character: lowercase letters and whitespace 2 (English prose
    # averages about four characters per token), capitals 3, digits and punctuation 6 (Qwen and
    # Llama tokenizers split numbers into digits; "--", " 3.14" and "ISBN 978-3" are about one
    # token per character)
    table = bytearray([6] * 128)
    for ch in "abcdefghijklmnopqrstuvwxyz \n\t":
        table[ord(ch)] = 2
    for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        table[ord(ch)] = 3
    return bytes(table)


_ASCII_SIXTHS = _ascii_weights()
# whitespace before a digit or punctuation is a token of its own, not the start of a word's
_LONE_SPACE = re.compile(r"\s(?=[0-9!-/:-@\[-`{-~])")
# ids, hashes, URLs and base64 are no words the vocabulary knows: about 1.5 characters a token
_LONG_WORD = re.compile(rb"[!-~]{16,}")
_LONG_WORD_SIXTHS = 4


def estimate_tokens(text: str) -> int:
    """A conservative token count for the model's tokenizer, without the tokenizer: weighted
    ASCII characters (see _ascii_weights; two thirds of a token per character in runs of 16
    or more), plus one token per UTF-8 byte of every other character (a byte-level BPE never
    needs more). Against Qwen2.5's tokenizer it counts about 1.5 times the real number on
    English prose and is not under it on German, CJK, digits, punctuation, capitals, emoji or
    URLs (tests/integration/test_long_text_embedded.py). Made-up words, hex and base64 come out
    at 0.65-0.9 of it: llama.cpp shortens the answer to fit, which absorbs that in a chunk
    mixed with prose; a chunk of nothing else may still overflow the context."""
    raw = text.encode("utf-8")
    ascii_bytes = text.encode("ascii", "ignore")
    sixths = sum(_ASCII_SIXTHS[b] for b in ascii_bytes) + 4 * len(_LONE_SPACE.findall(text))
    for m in _LONG_WORD.finditer(ascii_bytes):
        word = m.group(0)
        sixths += max(0, _LONG_WORD_SIXTHS * len(word) - sum(_ASCII_SIXTHS[b] for b in word))
    return -(-sixths // 6) + len(raw) - len(ascii_bytes)


def _cost(text: str) -> int:
    # the text travels as a JSON string literal: escaped quotes and line breaks count too
    return estimate_tokens(json.dumps(text, ensure_ascii=False))


@dataclass(frozen=True)
class TextChunk:
    """`text[start:end]` of the item's full text."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class ChunkPlan:
    """The chunks to read (the first `len(chunks)` of `total`)."""

    chunks: tuple[TextChunk, ...]
    total: int

    @property
    def dropped(self) -> int:
        return self.total - len(self.chunks)


def _units(text: str, max_tokens: int) -> list[tuple[int, int]]:
    """Sentence spans, each longer than `max_tokens` split at whitespace (or, a word longer
    still, between characters), so every unit fits one chunk."""
    out: list[tuple[int, int]] = []
    for start, end in sentence_spans(text):
        if _cost(text[start:end]) <= max_tokens:
            out.append((start, end))
        else:
            out += _split_long(text, start, end, max_tokens)
    return out


def _split_long(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    piece: tuple[int, int] | None = None
    used = 0
    for m in _WORD.finditer(text, start, end):
        cost = _cost(m.group(0)) + 1
        if cost > max_tokens:
            if piece is not None:
                out.append(piece)
                piece = None
            out += _cut_word(text, m.start(), m.end(), max_tokens)
        elif piece is not None and used + cost <= max_tokens:
            piece, used = (piece[0], m.end()), used + cost
        else:
            if piece is not None:
                out.append(piece)
            piece, used = (m.start(), m.end()), cost
    if piece is not None:
        out.append(piece)
    return out


def _cut_word(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    """A word over the budget, in pieces that each fit (the cost grows with the length, so a
    bisection finds each cut)."""
    out: list[tuple[int, int]] = []
    while start < end:
        lo, hi = start + 1, end  # the longest fitting piece ends in [lo, hi]
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _cost(text[start:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        out.append((start, lo))
        start = lo
    return out


def chunk_text(text: str, *, max_tokens: int) -> list[TextChunk]:
    """`text` in chunks of at most `max_tokens` (estimated, as a JSON string), cut between
    sentences; each chunk after the first repeats the previous chunk's last sentences when
    they take at most OVERLAP_SHARE of the budget. Every character of `text` is in a chunk."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    units = _units(text, max_tokens)
    costs = [_cost(text[s:e]) + 1 for s, e in units]  # +1: the whitespace between units
    overlap = int(max_tokens * OVERLAP_SHARE)
    chunks: list[TextChunk] = []
    i = 0
    while i < len(units):
        j, used = i, 0
        while j < len(units) and (j == i or used + costs[j] <= max_tokens):
            used += costs[j]
            j += 1
        start, end = units[i][0], units[j - 1][1]
        chunks.append(TextChunk(start=start, end=end, text=text[start:end]))
        if j == len(units):
            break
        k, back = j, 0
        while k - 1 > i and back + costs[k - 1] <= overlap:
            k -= 1
            back += costs[k]
        i = k
    return chunks


def text_budget(messages: Sequence[Message], *, context_tokens: int, answer_tokens: int) -> int:
    """Tokens left for the text in a context of `context_tokens`, given the request's
    messages with an empty text and the tokens reserved for the answer."""
    prompt = sum(estimate_tokens(m["content"]) for m in messages) + TEMPLATE_TOKENS
    return context_tokens - prompt - answer_tokens


def plan_item_chunks(
    text: str, *, item_id: str, stage: str, budget_tokens: int, max_chunks: int
) -> tuple[ChunkPlan, list[Rejection]]:
    """The chunks of one item's text to send, and the rejection that says what a budget left
    unread: the chunks past `max_chunks`, or everything when the prompt leaves too little room
    (at least MIN_TEXT_TOKENS) for any text."""
    if budget_tokens < MIN_TEXT_TOKENS:
        return ChunkPlan(chunks=(), total=0), [Rejection(
            stage=stage, reason=NO_ROOM, item_id=item_id,
            detail=f"{budget_tokens} tokens left for {len(text)} characters; raise the "
            "context size (llm.embedded_ctx, or llm.context_tokens for other endpoints)")]
    chunks = chunk_text(text, max_tokens=budget_tokens)
    plan = ChunkPlan(chunks=tuple(chunks[:max_chunks]), total=len(chunks))
    if not plan.dropped:
        return plan, []
    unread = len(text) - plan.chunks[-1].end
    return plan, [Rejection(
        stage=stage, reason=TRUNCATED, item_id=item_id,
        detail=f"read {len(plan.chunks)} of {plan.total} chunks; the last {unread} of "
        f"{len(text)} characters were not read (max_chunks {max_chunks})")]


@dataclass(frozen=True)
class ChunkedRequests:
    """One request per chunk of every item's text, in item then text order; `sources[i]` is
    the item and chunk of `requests[i]`; `rejected` says what budgets left unread."""

    sources: tuple[tuple[Item, TextChunk], ...]
    requests: tuple[LLMRequest[Any], ...]
    rejected: tuple[Rejection, ...]


def chunked_requests(
    items: Sequence[Item],
    *,
    build: Callable[[Item, str], tuple[Message, ...]],
    schema: type[BaseModel],
    stage: str,
    answer_tokens: int,
    context_tokens: int,
    max_chunks: int,
    reserve: Mapping[str, int],
) -> ChunkedRequests:
    """Requests whose messages `build(item, chunk_text)` fit `context_tokens` with
    `answer_tokens` left for the answer, over each item's `full_text()`; `reserve[item.id]`
    tokens more are left free for what a caller adds to the chunk's text (coreference marks)."""
    sources: list[tuple[Item, TextChunk]] = []
    requests: list[LLMRequest[Any]] = []
    rejected: list[Rejection] = []
    for item in items:
        budget = text_budget(build(item, ""), context_tokens=context_tokens,
                             answer_tokens=answer_tokens) - reserve.get(item.id, 0)
        plan, rej = plan_item_chunks(item.full_text(), item_id=item.id, stage=stage,
                                     budget_tokens=budget, max_chunks=max_chunks)
        rejected += rej
        for chunk in plan.chunks:
            sources.append((item, chunk))
            requests.append(LLMRequest(messages=build(item, chunk.text), schema=schema,
                                       stage=stage, item_id=item.id, max_tokens=answer_tokens))
    return ChunkedRequests(sources=tuple(sources), requests=tuple(requests),
                           rejected=tuple(rejected))
