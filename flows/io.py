"""The flow's reads and writes: inputs through `kg.io`, exports through `kg.export`, reports.
Only flows and the CLI touch the file system."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from kg.atomic import atomic_dir, atomic_write
from kg.io.catalog import CatalogMapping, read_catalog
from kg.io.seed import SeedGraph, read_seed
from kg.ontology import load_ontology
from kg.records import Entity, Item, Ontology, Triple
from kgenrich.settings import ExportSettings
from pipeline.assemble import exported
from pipeline.report import RunReport

if TYPE_CHECKING:
    from flows.enrich import EnrichInputs


class MappingSpec(BaseModel):
    """Catalog column mapping as plain data (so it is a valid Prefect flow parameter)."""

    id: str = "id"
    title: str = "title"
    text: tuple[str, ...] = ()
    attributes: dict[str, str] = Field(default_factory=dict)
    list_separator: str = "|"
    format: str = "auto"


def read_ontology(path: Path) -> Ontology:
    return load_ontology(path)


def read_items(path: Path, spec: MappingSpec, *, ontology: Ontology) -> list[Item]:
    mapping = CatalogMapping(id=spec.id, title=spec.title, text=spec.text,
                             attributes=spec.attributes, list_separator=spec.list_separator,
                             format=spec.format)  # type: ignore[arg-type]
    return read_catalog(path, mapping=mapping)


def read_seed_graph(inputs: EnrichInputs, *, ontology: Ontology) -> SeedGraph | None:
    if inputs.seed is None:
        return None
    return read_seed(inputs.seed, format=inputs.seed_format, ontology=ontology,  # type: ignore[arg-type]
                     link=inputs.seed_link)


def write_exports(
    out_dir: Path,
    *,
    entities: Sequence[Entity],
    triples: Sequence[Triple],
    ontology: Ontology,
    items: Sequence[Item],
    interactions: Path | None,
    settings: ExportSettings,
) -> dict[str, Path]:
    """Every export of a run; the folder appears complete or not at all."""
    from kg.export import graph as gexp
    from kg.export import jsonl, rdf, recbole, ripplenet

    out_dir = Path(out_dir)
    rec_triples = exported(triples, include=settings.include)
    written: dict[str, Path] = {}
    with atomic_dir(out_dir) as tmp:
        jsonl.write_jsonl(tmp, entities=entities, triples=triples)
        written["jsonl"] = out_dir / "triples.jsonl"
        if "turtle" in settings.formats:
            rdf.write_turtle(tmp / "graph.ttl", entities=entities, triples=triples,
                             base_iri=settings.base_iri)
            written["turtle"] = out_dir / "graph.ttl"
        if "nquads" in settings.formats:
            rdf.write_nquads(tmp / "graph.nq", entities=entities, triples=triples,
                             base_iri=settings.base_iri)
            written["nquads"] = out_dir / "graph.nq"
        if "graphml" in settings.formats:
            gexp.write_graphml(tmp / "graph.graphml", entities=entities, triples=triples)
            written["graphml"] = out_dir / "graph.graphml"
        if "ripplenet" in settings.formats:
            ripplenet.write_ripplenet(tmp / "ripplenet", items=items, entities=entities,
                                      triples=rec_triples, interactions=interactions)
            written["ripplenet"] = out_dir / "ripplenet"
        if "recbole" in settings.formats:
            recbole.write_recbole(tmp / "recbole", name="kgenrich", items=items,
                                  entities=entities, triples=rec_triples)
            written["recbole"] = out_dir / "recbole"
    return written


def write_report(folder: Path, report: RunReport, markdown: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "report.md") as f:
        f.write(markdown)
    with atomic_write(folder / "report.json") as f:
        f.write(report.model_dump_json(indent=2))


def read_answer_key(path: Path) -> list[tuple[str, str, str]]:
    """The demo's hidden facts: TSV `head relation tail` with a header line."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        if line.strip():
            h, r, t = line.split("\t")
            rows.append((h, r, t))
    return rows


def dump_json(path: Path, data: Mapping[str, object]) -> None:
    with atomic_write(path) as f:
        json.dump(data, f, indent=2)


def read_run(out_dir: Path) -> tuple[list[Entity], list[Triple]]:
    from kg.export.jsonl import read_jsonl

    entities, triples = read_jsonl(out_dir)
    return list(entities), list(triples)
