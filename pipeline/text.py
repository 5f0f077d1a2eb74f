"""Small pure text helpers shared by the LLM stages: matching that ignores case and whitespace,
sentence spans, and the evidence window around a span found in a text."""

from __future__ import annotations

import re

_WS = re.compile(r"\s+")
# A sentence ends at . ! ? or … (closing quotes or brackets may follow) before whitespace that is
# not followed by a lowercase letter ("e.g. the" goes on), or at a line break.
_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*\s+(?![a-z])|\s*\n\s*")
#: Evidence longer than this is cut to a window around the tail, at whitespace.
MAX_EVIDENCE_CHARS = 300


def squash(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()


def occurs_in(span: str, text: str) -> bool:
    """True if `span` occurs in `text`, ignoring case and whitespace differences."""
    s = squash(span)
    return bool(s) and s in squash(text)


def _folded(text: str) -> tuple[str, list[int]]:
    """`text` casefolded with whitespace runs as one space, and the index in `text` of every
    character of it, so a match in the folded text maps back to an exact span of `text`."""
    out: list[str] = []
    where: list[int] = []
    in_space = False
    for i, ch in enumerate(text):
        if ch.isspace():  # what `\s` matches in a str pattern
            if not in_space:
                out.append(" ")
                where.append(i)
            in_space = True
            continue
        in_space = False
        for f in ch.casefold():  # "ß" folds to "ss": both map back to the one character
            out.append(f)
            where.append(i)
    return "".join(out), where


def _at_word_edges(text: str, start: int, end: int) -> bool:
    before_ok = start == 0 or not (text[start - 1].isalnum() and text[start].isalnum())
    after_ok = end == len(text) or not (text[end - 1].isalnum() and text[end].isalnum())
    return before_ok and after_ok


def find_span(span: str, text: str) -> tuple[int, int] | None:
    """(start, end) in `text` of the first occurrence of `span` as `occurs_in` matches it,
    preferring one that neither starts nor ends inside a word ("Scott", not "Scotty"); None
    when `span` does not occur."""
    needle = squash(span)
    if not needle:
        return None
    folded, where = _folded(text)
    first: tuple[int, int] | None = None
    pos = folded.find(needle)
    while pos >= 0:
        found = (where[pos], where[pos + len(needle) - 1] + 1)
        if _at_word_edges(text, *found):
            return found
        first = first or found
        pos = folded.find(needle, pos + 1)
    return first


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every sentence of `text`, stripped of surrounding whitespace."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        # the end mark and any closing quotes or brackets stay with their sentence
        end = m.start() + len(m.group(0).rstrip())
        _add_span(spans, text, start, end)
        start = m.end()
    _add_span(spans, text, start, len(text))
    return spans


def _add_span(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        lead = len(piece) - len(piece.lstrip())
        spans.append((start + lead, start + lead + len(stripped)))


def evidence_around(text: str, start: int, end: int) -> str:
    """The sentence(s) of `text` holding `text[start:end]`, or, when longer than
    MAX_EVIDENCE_CHARS, a window of about that size around it cut at whitespace. Always a
    substring of `text` that contains `text[start:end]`."""
    lo, hi = start, end
    for s, e in sentence_spans(text):
        if s < end and start < e:
            lo, hi = min(lo, s), max(hi, e)
    if hi - lo > MAX_EVIDENCE_CHARS:
        pad = max(0, (MAX_EVIDENCE_CHARS - (end - start)) // 2)
        lo = _cut(text, max(lo, start - pad), start, forward=True)
        hi = _cut(text, min(hi, end + pad), end, forward=False)
    return text[lo:hi].strip()


def _cut(text: str, pos: int, limit: int, *, forward: bool) -> int:
    """Move `pos` toward `limit` to the nearest whitespace, so the window holds whole words."""
    if forward:
        while pos < limit and pos > 0 and not text[pos - 1].isspace():
            pos += 1
    else:
        while pos > limit and pos < len(text) and not text[pos].isspace():
            pos -= 1
    return pos
