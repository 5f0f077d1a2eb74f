"""The flow's reads and writes: inputs through `kg.io`, exports through `kg.export`, reports.
Only flows and the CLI touch the file system."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from kgenrich.kg.atomic import atomic_write
from kgenrich.kg.export.ripplenet import Interaction
from kgenrich.kg.io.catalog import CatalogMapping, read_catalog
from kgenrich.kg.io.seed import SeedGraph, read_seed
from kgenrich.kg.ontology import load_ontology
from kgenrich.kg.records import Entity, Item, Ontology, Triple
from kgenrich.errors import ConfigError, InputError
from kgenrich.settings import ExportSettings
from kgenrich.pipeline.assemble import exported
from kgenrich.verification.confidence import ConfidenceModel
from kgenrich.pipeline.report import RunReport
from kgenrich.kg.review import ReviewRow

if TYPE_CHECKING:
    from kgenrich.flows.enrich import EnrichInputs


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
    del ontology  # relations are checked by the catalog stage, which records rejections
    mapping = CatalogMapping(id=spec.id, title=spec.title, text=spec.text,
                             attributes=spec.attributes, list_separator=spec.list_separator,
                             format=spec.format)
    return read_catalog(path, mapping=mapping)


def read_seed_graph(inputs: EnrichInputs, *, ontology: Ontology) -> SeedGraph | None:
    if inputs.seed is None:
        return None
    return read_seed(inputs.seed, format=inputs.seed_format, ontology=ontology,  # type: ignore[arg-type]
                     link=inputs.seed_link, on_error=inputs.seed_on_error)  # type: ignore[arg-type]


def write_exports(
    out_dir: Path,
    *,
    entities: Sequence[Entity],
    triples: Sequence[Triple],
    items: Sequence[str] | None,
    interactions: Path | None,
    settings: ExportSettings,
) -> dict[str, Path]:
    """Every export of a run. Each file is replaced atomically; the canonical JSONL dump
    (everything, rejected triples included) is written last, so a folder with a fresh
    triples.jsonl has fresh exports beside it."""
    from kgenrich.kg.export import graph as gexp
    from kgenrich.kg.export import jsonl, rdf, recbole, ripplenet

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rec_triples = exported(triples, include=settings.include)
    written: dict[str, Path] = {}
    if "turtle" in settings.formats:
        rdf.write_turtle(out_dir / "graph.ttl", entities=entities, triples=triples,
                         base=settings.base_iri)
        written["turtle"] = out_dir / "graph.ttl"
    if "nquads" in settings.formats:
        rdf.write_nquads(out_dir / "graph.nq", entities=entities, triples=triples,
                         base=settings.base_iri)
        written["nquads"] = out_dir / "graph.nq"
    if "graphml" in settings.formats:
        gexp.write_graphml(out_dir / "graph.graphml", entities=entities, triples=triples)
        written["graphml"] = out_dir / "graph.graphml"
    if "ripplenet" in settings.formats:
        ripplenet.write_ripplenet(
            out_dir / "ripplenet", items=items, entities=entities, triples=rec_triples,
            interactions=read_interactions(interactions) if interactions else None)
        written["ripplenet"] = out_dir / "ripplenet"
    if "recbole" in settings.formats:
        recbole.write_recbole(out_dir / "recbole", dataset="kgenrich", entities=entities,
                              triples=rec_triples)
        written["recbole"] = out_dir / "recbole"
    jsonl.write_jsonl(out_dir, entities=entities, triples=triples)
    written["jsonl"] = out_dir / "triples.jsonl"
    return written


def read_interactions(path: Path) -> list[Interaction]:
    """User-item interactions from a RecBole `.inter` file or a CSV/TSV with user, item and
    (optional) rating columns (`user_id`/`userId`/`user`, `item_id`/`movieId`/`item`)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    if not lines:
        raise InputError("empty interactions file", file=str(path), line=1)
    delim = "\t" if "\t" in lines[0] else ","
    header = [h.split(":")[0].strip().lower() for h in lines[0].split(delim)]

    def col(*names: str, required: bool = True) -> int | None:
        for n in names:
            if n.lower() in header:
                return header.index(n.lower())
        if required:
            raise InputError("missing column", file=str(path), line=1, field=names[0],
                             expected=" or ".join(names), got=lines[0])
        return None

    u, i = col("user_id", "userid", "user"), col("item_id", "movieid", "item")
    r = col("rating", required=False)
    out: list[Interaction] = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(delim)
        try:
            rating = float(parts[r]) if r is not None else None
            out.append(Interaction(user=parts[u], item=parts[i], rating=rating))  # type: ignore[index]
        except (IndexError, ValueError) as err:
            field = "rating" if isinstance(err, ValueError) else "columns"
            raise InputError("bad interaction row", file=str(path), line=n, field=field,
                             got=line) from err
    return out


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
    from kgenrich.kg.export.jsonl import read_jsonl

    dump = read_jsonl(out_dir)
    return list(dump.entities), list(dump.triples)


def read_confidence_model(path: Path) -> ConfidenceModel:
    """A fitted combiner written by ``bench/confidence.py --model-out`` (JSON)."""
    try:
        return ConfidenceModel.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"verify.confidence_model: file not found: {path}") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"verify.confidence_model: {path} is not a confidence model: {err}") \
            from None


def read_review(path: Path) -> list[ReviewRow]:
    """A review file a person edited: JSONL rows with a `verdict` of accept, reject or empty."""
    rows: list[ReviewRow] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(ReviewRow.model_validate_json(line))
        except ValueError as err:
            raise InputError("bad review row", file=str(path), line=n, field="verdict",
                             expected='JSON with verdict "accept", "reject" or ""',
                             got=line) from err
    return rows


def write_review(path: Path, rows: Sequence[ReviewRow]) -> Path:
    with atomic_write(path) as f:
        for row in rows:
            f.write(row.model_dump_json() + "\n")
    return path
