"""Small pure text helpers shared by the LLM stages."""

from __future__ import annotations

import re

_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()


def occurs_in(span: str, text: str) -> bool:
    """True if `span` occurs in `text`, ignoring case and whitespace differences."""
    s = squash(span)
    return bool(s) and s in squash(text)
