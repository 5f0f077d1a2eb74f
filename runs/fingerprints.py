"""Per-item fingerprints and the catalog diff: what decides whether an item's stage result can be
re-used.

A stage's fingerprint for an item covers everything that determines that item's answers: the
item's canonical JSON, the stage's prompt version, the LLM model id, the stage's settings, the
ontology, and for completion the item's seed facts and its upstream stages' fingerprints. Not
covered, deliberately: the catalog-wide vocabulary shown as choices/hints in completion prompts;
including it would make every new genre or person re-ask every item.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from kgenrich.kg.records import Item, Ontology, Triple
from kgenrich.pipeline import complete, coref_llm, discover, extract

STAGES: tuple[str, ...] = (discover.STAGE, extract.STAGE, complete.STAGE)
PROMPT_VERSIONS: Mapping[str, str] = {
    discover.STAGE: discover.PROMPT_VERSION,
    extract.STAGE: extract.PROMPT_VERSION,
    complete.STAGE: complete.PROMPT_VERSION,
}



def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 as is: the same data always gives the same text."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def sha256(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def ontology_digest(ontology: Ontology) -> str:
    return sha256(ontology)


def stage_fingerprints(
    item: Item,
    *,
    model: str,
    ontology: str,
    settings: Mapping[str, Mapping[str, Any]],
    seed_facts: Iterable[tuple[str, str, str]] = (),
    prompt_versions: Mapping[str, str] = PROMPT_VERSIONS,
) -> dict[str, str]:
    """Stage -> fingerprint of this item's input to it. `settings` holds each stage's relevant
    settings as plain data; `ontology` is `ontology_digest(...)`. Completion chains the
    discovery and extraction fingerprints: its gaps and prompt facts come from their output;
    extraction with coreference on chains discovery's (its mentions feed the clusters)."""
    base = {"item": item, "model": model, "ontology": ontology}
    out: dict[str, str] = {}
    for stage in (discover.STAGE, extract.STAGE):
        out[stage] = sha256({**base, "stage": stage, "prompt": prompt_versions[stage],
                             "settings": settings.get(stage, {}),
                             **(_coref_input(settings.get(stage, {}), out)
                                if stage == extract.STAGE else {})})
    out[complete.STAGE] = sha256({
        **base, "stage": complete.STAGE, "prompt": prompt_versions[complete.STAGE],
        "settings": settings.get(complete.STAGE, {}), "seed": sorted(set(seed_facts)),
        "upstream": [out[discover.STAGE], out[extract.STAGE]],
    })
    return out


def _coref_input(extract_settings: Mapping[str, Any], out: Mapping[str, str]) -> dict[str, Any]:
    # coreference reads discovery's mentions, so they are extraction's input too; the LLM
    # resolver's prompt as well
    mode = extract_settings.get("coref", "off")
    if mode == "off":
        return {}
    return {"upstream": [out[discover.STAGE]],
            **({"coref_prompt": coref_llm.PROMPT_VERSION} if mode == "llm" else {})}


def item_fingerprint(stage_fps: Mapping[str, str]) -> str:
    """The item's content fingerprint: it changes iff one of its stage fingerprints does."""
    return sha256(dict(stage_fps))


def item_seed_facts(
    triples: Iterable[Triple], *, item_entity: Mapping[str, str]
) -> dict[str, list[tuple[str, str, str]]]:
    """Item id -> keys of the given (seed) triples about the item's entity."""
    by_entity: dict[str, list[tuple[str, str, str]]] = {}
    for t in triples:
        by_entity.setdefault(t.head, []).append(t.key)
    return {item: by_entity.get(ent, []) for item, ent in item_entity.items()}


@dataclass(frozen=True)
class CatalogDiff:
    """How the current catalog differs from the one the state store last saw."""

    new: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        return {"new": len(self.new), "changed": len(self.changed),
                "unchanged": len(self.unchanged), "removed": len(self.removed)}


def diff_catalog(previous: Mapping[str, str], current: Mapping[str, str]) -> CatalogDiff:
    """Compare item id -> fingerprint maps. Order follows `current`, then `previous`."""
    return CatalogDiff(
        new=tuple(i for i in current if i not in previous),
        changed=tuple(i for i, fp in current.items() if i in previous and previous[i] != fp),
        unchanged=tuple(i for i, fp in current.items() if previous.get(i) == fp),
        removed=tuple(i for i in previous if i not in current),
    )
