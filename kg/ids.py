"""Stable entity ids: items are `item/<catalog id>`, other entities `<type>/<normalized label>`.

Ids are plain strings, stable across runs for the same label and type, so a re-run links to the
same nodes; exporters turn them into IRIs by percent-encoding.
"""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"\s+")
_SLUG_DROP = re.compile(r"[^\w\-.~]+", re.UNICODE)


def normalize_label(label: str) -> str:
    """Casefolded, accent-folded, whitespace-collapsed form used to match labels."""
    text = unicodedata.normalize("NFKD", label)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("\u00a0", " ").strip().casefold()
    text = re.sub(r"^(the|a|an)\s+", "", text) if len(text.split()) > 1 else text
    return _SPACE.sub(" ", text).strip(" .,;:")


def slug(label: str) -> str:
    """A readable id fragment from a label (unicode letters kept, separators collapsed)."""
    text = _SPACE.sub("-", normalize_label(label))
    text = _SLUG_DROP.sub("", text).strip("-")
    return text or "_"


def item_entity_id(item_id: str) -> str:
    return f"item/{item_id}"


def mint_entity_id(type_: str, label: str) -> str:
    """Id for a non-item entity. Same type and normalized label -> same id."""
    return f"{type_.lower()}/{slug(label)}"
