"""Preflight: the mistakes in a run's inputs and settings that would otherwise surface late (after
KGE training or every LLM call), found from the read inputs alone, plus what the run would ask.

Pure: takes the mapping, the ontology, the read items and the base graph; reads no file, starts
no model. `check_mapping` runs before the inputs are read, `check_run` on the base graph.
Absent catalog columns and malformed seed lines are the readers' own InputErrors.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import get_args

from kgenrich.errors import ConfigError
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.kg.io.seed import SeedFormat
from kgenrich.kg.records import Item, Ontology
from kgenrich.pipeline import assemble
from kgenrich.pipeline.complete import missing_relations
from kgenrich.runs.book import enabled_stages
from kgenrich.runs.graph import BaseGraph
from kgenrich.settings import Settings
from kgenrich.verification.scorers import MIN_TRUSTED

#: Separators people put inside list cells; one of them in cells that never split on the
#: configured separator means the separator is probably wrong.
COMMON_SEPARATORS = ("|", ",", ";", "/")


@dataclass(frozen=True)
class Finding:
    """One problem or warning: the setting, option or column it is about, and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class PreflightError(ConfigError):
    """The run cannot work as configured. `problems` holds every finding, worst first."""

    def __init__(self, problems: Sequence[Finding]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Preflight:
    """What preflight found, and what the run would ask for (a fresh run; unchanged items of an
    earlier run are not asked again, so these are upper bounds)."""

    problems: tuple[Finding, ...] = ()
    warnings: tuple[Finding, ...] = ()
    items: int = 0
    trusted: int = 0  # distinct trusted (seed + catalog) triples the verifier trains on
    gaps: dict[str, int] = field(default_factory=dict)  # relation -> items lacking it
    llm_calls: dict[str, int] = field(default_factory=dict)  # stage -> estimated calls

    def raise_for_problems(self) -> None:
        """Raise PreflightError when there is any problem."""
        if self.problems:
            raise PreflightError(self.problems)


def check_mapping(
    mapping: CatalogMapping, *, ontology: Ontology, seed_format: str, settings: Settings,
) -> list[Finding]:
    """Problems visible before any input is read: `--attr` relations and `complete.relations`
    the ontology lacks, and an unknown seed format."""
    problems: list[Finding] = []
    names = ontology.relation_names
    for column, relation in mapping.attributes.items():
        if relation not in names:
            problems.append(Finding(f"attr {column}={relation}",
                                    f"relation {relation!r} is not in the ontology; "
                                    + _hint(relation, names)))
    for relation in settings.complete.relations or ():
        if relation not in names:
            problems.append(Finding("complete.relations", f"relation {relation!r} is not in the "
                                    "ontology; " + _hint(relation, names)))
    formats = get_args(SeedFormat)
    if seed_format not in formats:
        problems.append(Finding("seed_format", f"unknown seed format {seed_format!r}; "
                                + _hint(seed_format, formats)))
    return problems


def check_items(
    items: Sequence[Item], *, mapping: CatalogMapping, ontology: Ontology,
) -> list[Finding]:
    """Warnings about the read catalog: mapped columns empty in every row (the readers reject
    absent ones) and list attributes whose cells never split on their separator."""
    warnings: list[Finding] = []
    for column in mapping.text:
        if not any(it.text.get(column) for it in items):
            warnings.append(Finding(f"text column {column!r}", "empty in every row"))
    columns_of: dict[str, list[str]] = {}
    for column, relation in mapping.attributes.items():
        columns_of.setdefault(relation, []).append(column)
    for relation, columns in columns_of.items():
        values = [it.attributes.get(relation, ()) for it in items]
        shown = ", ".join(repr(c) for c in columns)
        if not any(values):
            warnings.append(Finding(f"attr column {shown}", "empty in every row"))
            continue
        rel = ontology.relation(relation)
        if rel is None or rel.functional or any(len(v) > 1 for v in values):
            continue
        sep = mapping.list_separator
        seps = {mapping.separators.get(c, sep) for c in columns}
        found = Counter(s for v in values for cell in v for s in COMMON_SEPARATORS
                        if s in cell and s not in seps)
        if found:
            likely = found.most_common(1)[0][0]
            warnings.append(Finding(
                f"attr column {shown}",
                f"no cell splits on the list separator {' or '.join(map(repr, sorted(seps)))}, "
                f"but {found[likely]} cell(s) contain {likely!r}: "
                f"is the list separator {likely!r}?"))
    return warnings


def check_run(
    graph: BaseGraph, *, mapping: CatalogMapping, seed_format: str, settings: Settings,
) -> Preflight:
    """Every check on the read inputs, and the run's items, gaps and estimated LLM calls."""
    problems = check_mapping(mapping, ontology=graph.ontology, seed_format=seed_format,
                             settings=settings)
    warnings = check_items(graph.items, mapping=mapping, ontology=graph.ontology)
    trusted = len({t.key for t in assemble.trusted(graph.base)})
    if trusted < MIN_TRUSTED:
        problems.append(Finding(
            "verify", f"verification needs at least {MIN_TRUSTED} trusted triples, the seed and "
            f"catalog give {trusted}: add a seed KG or more attribute columns"))
    gaps, calls = _estimate(graph, settings=settings)
    return Preflight(problems=tuple(problems), warnings=tuple(warnings), items=len(graph.items),
                     trusted=trusted, gaps=gaps, llm_calls=calls)


def _estimate(graph: BaseGraph, *, settings: Settings) -> tuple[dict[str, int], dict[str, int]]:
    c = settings.complete
    missing = missing_relations(graph.items, triples=graph.base, ontology=graph.ontology,
                                relations=c.relations, item_entity=graph.item_entity)
    gaps = Counter(r.name for rels in missing.values() for r in rels)
    enabled = enabled_stages(settings)
    with_text = sum(1 for it in graph.items if any(v for v in it.text.values()))
    calls: dict[str, int] = {}
    if "discover" in enabled and settings.discover.use_llm:
        calls["discover"] = with_text
    if "extract" in enabled:
        calls["extract"] = with_text
        if settings.extract.coref == "llm":  # at most one more per text (only those naming people)
            calls["coref"] = with_text
    if "complete" in enabled:
        asked = [len(missing[it.id]) for it in graph.items if it.id in missing]
        calls["complete"] = sum(asked[:c.max_items] if c.max_items else asked) * c.samples
    return dict(sorted(gaps.items())), calls


def _hint(name: str, known: Iterable[str]) -> str:
    choices = list(known)
    close = difflib.get_close_matches(name, choices, n=2, cutoff=0.5)
    if close:
        return f"did you mean {' or '.join(repr(c) for c in close)}?"
    return f"expected one of {', '.join(choices)}"
