"""Calibration probes: questions whose answers the run already knows.

A seeded sample of items with trusted facts has some of its (item, relation) groups masked:
their triples are withheld from the prompt and from the verifier's training, the LLM is asked to
complete them exactly as it is asked for real gaps, and each proposal is labelled by whether
its tail is one of the masked tails. The labelled proposals measure, per relation, how often a
candidate at a given confidence is right: that is what `verification.probe_fit` turns into
thresholds, so the accepted set keeps a stated precision whatever the LLM knows.

Pure: selection and labelling only; asking and verifying happen in `runs.probes`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass

from kgenrich.kg.records import Item, Ontology, Relation, Triple

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Probes:
    """The masked groups of the probe items and what completion needs to ask them."""

    #: probe items, in their seeded order
    items: tuple[Item, ...]
    #: (head entity, relation) -> the masked tails: the answer key
    masked: Mapping[tuple[str, str], frozenset[str]]
    #: item id -> the masked relations, asked as that item's gaps
    gaps: Mapping[str, tuple[Relation, ...]]

    @property
    def masked_keys(self) -> frozenset[Key]:
        return frozenset((h, r, t) for (h, r), tails in self.masked.items() for t in tails)

    def visible(self, triples: Iterable[Triple]) -> list[Triple]:
        """``triples`` without the masked ones (what the prompt and the verifier may see)."""
        hidden = self.masked_keys
        return [t for t in triples if t.key not in hidden]

    def is_correct(self, triple: Triple) -> bool:
        return triple.tail in self.masked.get((triple.head, triple.relation), frozenset())


def _rank(seed: int, *parts: str) -> str:
    # A hash order, not random.sample: the probe set of one item does not depend on which
    # other items exist or are excluded, so repeated runs (and benchmark seeds that exclude
    # different items) keep asking the same questions and hit the LLM response cache.
    return hashlib.sha256("\x1f".join((str(seed), *parts)).encode()).hexdigest()


def choose_probes(
    items: Sequence[Item],
    *,
    trusted: Sequence[Triple],
    ontology: Ontology,
    item_entity: Mapping[str, str],
    relations: Sequence[str] | None,
    exclude: Set[str],
    n_items: int,
    mask_fraction: float,
    seed: int,
) -> Probes:
    """Up to ``n_items`` items (not in ``exclude``) with trusted facts on completable relations;
    of each, ``mask_fraction`` of those relation groups (at least one) is masked."""
    completable = {r.name: r for r in ontology.relations
                   if r.domain == ontology.item_type and (relations is None or r.name in relations)}
    groups: dict[tuple[str, str], set[str]] = {}
    for t in trusted:
        if t.relation in completable:
            groups.setdefault((t.head, t.relation), set()).add(t.tail)
    by_head: dict[str, list[str]] = {}
    for head, rel in groups:
        by_head.setdefault(head, []).append(rel)
    eligible = [it for it in items
                if it.id not in exclude and by_head.get(item_entity[it.id])]
    eligible.sort(key=lambda it: _rank(seed, it.id))
    chosen = eligible[:n_items]
    masked: dict[tuple[str, str], frozenset[str]] = {}
    gaps: dict[str, tuple[Relation, ...]] = {}
    for it in chosen:
        head = item_entity[it.id]
        rels = sorted(by_head[head], key=lambda r: _rank(seed, head, r))  # noqa: B023
        take = max(1, round(mask_fraction * len(rels)))
        picked = set(rels[:take])
        for rel in picked:
            masked[(head, rel)] = frozenset(groups[(head, rel)])
        # ontology order, as `missing_relations` gives real gaps: the same prompt shape
        gaps[it.id] = tuple(r for name, r in completable.items() if name in picked)
    return Probes(items=tuple(chosen), masked=masked, gaps=gaps)
