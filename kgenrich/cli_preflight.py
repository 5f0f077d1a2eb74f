"""`kgenrich run`'s preflight: read the inputs without Prefect, check them (runs/preflight.py)
and print the warnings, or with `--dry-run` what the run would ask for."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import cast

from rich.console import Console

from kgenrich.kg.io.catalog import CatalogMapping, read_catalog
from kgenrich.kg.io.seed import OnError, SeedFormat, read_seed
from kgenrich.kg.ontology import load_ontology
from kgenrich.pipeline.catalog import catalog_triples
from kgenrich.pipeline.llm.reachability import unreachable
from kgenrich.runs.graph import base_graph
from kgenrich.runs.preflight import (
    Finding,
    Preflight,
    PreflightError,
    check_mapping,
    check_run,
)
from kgenrich.runs.state import StateStore
from kgenrich.settings import Settings


def preflight_inputs(
    *, catalog: Path, mapping: CatalogMapping, ontology: Path, seed: Path | None,
    seed_format: str, seed_link: Path | None, seed_on_error: str, settings: Settings,
) -> Preflight:
    """Read the ontology, catalog and seed as the flow will, and run every preflight check.

    Raises:
        PreflightError: a mapping problem found before reading (the seed is not read then).
        InputError: a catalog or seed file the readers reject.
    """
    onto = load_ontology(ontology)
    early = check_mapping(mapping, ontology=onto, seed_format=seed_format, settings=settings)
    if early:
        raise PreflightError(early)
    items = read_catalog(catalog, mapping=mapping)
    seed_graph = None if seed is None else read_seed(
        seed, format=cast(SeedFormat, seed_format), ontology=onto, link=seed_link,
        on_error=cast(OnError, seed_on_error), relation_map=settings.seed.relation_map)
    graph = base_graph(ontology=onto, items=items, seed=seed_graph,
                       catalog=lambda its, *, ontology, index, links: catalog_triples(
                           its, ontology=ontology, index=index, item_links=links))
    result = check_run(graph, mapping=mapping, seed_format=seed_format, settings=settings)
    return _with_llm_check(result, settings)


def _with_llm_check(result: Preflight, settings: Settings) -> Preflight:
    """One cheap request to the configured LLM when a stage will ask it (last: it is the only
    check that touches the network)."""
    d, x, c = settings.discover, settings.extract, settings.complete
    if not (d.use_llm or x.enabled or c.enabled):
        return result
    why = unreachable(settings.llm)
    if why is None:
        return result
    field, _, message = why.partition(": ")
    return dataclasses.replace(result, problems=(*result.problems, Finding(field, message)))


def print_preflight(result: Preflight, *, console: Console, dry_run: bool) -> None:
    """Warnings always; with `dry_run` the items, gaps per relation and estimated LLM calls."""
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)
    if not dry_run:
        return
    out = Console(soft_wrap=True)
    out.print(f"items: {result.items}")
    out.print(f"trusted triples (seed + catalog): {result.trusted}")
    out.print("gaps (items lacking a relation): "
              + (", ".join(f"{r} {n}" for r, n in result.gaps.items()) or "none"))
    total = sum(result.llm_calls.values())
    out.print(f"estimated LLM calls: {total} ("
              + (", ".join(f"{s} {n}" for s, n in result.llm_calls.items()) or "no LLM stage")
              + ")")


def check_state(path: Path) -> None:
    """Open an existing state store once, so a corrupt or foreign file is one line now rather
    than an error from inside the flow after Prefect has started (`StateStore.open` runs
    SQLite's quick check). A missing file is fine: the run creates it."""
    if path.is_file():
        StateStore.open(path).close()
