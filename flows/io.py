"""The flow's reads and writes: inputs through `kg.io`, exports through `kg.export`, reports.
Only flows and the CLI touch the file system."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
from kgenrich.pipeline.confidence import ConfidenceModel
from kgenrich.pipeline.report import RunReport
from kgenrich.pipeline.review import ReviewRow

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


@dataclass(frozen=True)
class _ExportJob:
    """What every writer may need; RDF and GraphML keep every triple, recommender files only
    `rec_triples` (the decisions in `export.include`)."""

    entities: Sequence[Entity]
    triples: Sequence[Triple]
    rec_triples: Sequence[Triple]
    items: Sequence[str] | None
    interactions: Path | None
    base_iri: str


def _turtle(out_dir: Path, job: _ExportJob) -> Path:
    from kgenrich.kg.export import rdf

    rdf.write_turtle(out_dir / "graph.ttl", entities=job.entities, triples=job.triples,
                     base=job.base_iri)
    return out_dir / "graph.ttl"


def _nquads(out_dir: Path, job: _ExportJob) -> Path:
    from kgenrich.kg.export import rdf

    rdf.write_nquads(out_dir / "graph.nq", entities=job.entities, triples=job.triples,
                     base=job.base_iri)
    return out_dir / "graph.nq"


def _graphml(out_dir: Path, job: _ExportJob) -> Path:
    from kgenrich.kg.export import graph as gexp

    gexp.write_graphml(out_dir / "graph.graphml", entities=job.entities, triples=job.triples)
    return out_dir / "graph.graphml"


def _ripplenet(out_dir: Path, job: _ExportJob) -> Path:
    from kgenrich.kg.export import ripplenet

    ripplenet.write_ripplenet(
        out_dir / "ripplenet", items=job.items, entities=job.entities, triples=job.rec_triples,
        interactions=read_interactions(job.interactions) if job.interactions else None)
    return out_dir / "ripplenet"


def _recbole(out_dir: Path, job: _ExportJob) -> Path:
    from kgenrich.kg.export import recbole

    recbole.write_recbole(out_dir / "recbole", dataset="kgenrich", entities=job.entities,
                          triples=job.rec_triples)
    return out_dir / "recbole"


#: One writer per `kgenrich.settings.ExportFormat`, run in this order (a test checks the names
#: match the Literal, so a format cannot be accepted and then silently not written).
WRITERS: dict[str, Callable[[Path, _ExportJob], Path]] = {
    "turtle": _turtle,
    "nquads": _nquads,
    "graphml": _graphml,
    "ripplenet": _ripplenet,
    "recbole": _recbole,
}


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
    from kgenrich.kg.export import jsonl

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    job = _ExportJob(entities=entities, triples=triples,
                     rec_triples=exported(triples, include=settings.include), items=items,
                     interactions=interactions, base_iri=settings.base_iri)
    written: dict[str, Path] = {name: write(out_dir, job) for name, write in WRITERS.items()
                                if name in settings.formats}
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
