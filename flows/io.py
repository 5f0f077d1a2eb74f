"""The flow's reads and writes: inputs through `kg.io`, exports through `kg.export`, reports.
Only flows and the CLI touch the file system."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel

from kgenrich.errors import ConfigError, ExportError, InputError, PathError
from kgenrich.kg.atomic import atomic_dir, atomic_write, recover_staged, staged_exports
from kgenrich.kg.io.catalog import CatalogMapping, read_catalog
from kgenrich.kg.io.interactions import InteractionTable, read_interaction_table
from kgenrich.kg.io.seed import OnError, SeedFormat, SeedGraph, read_seed
from kgenrich.kg.ontology import load_ontology
from kgenrich.kg.records import Decision, Entity, Item, Ontology, Triple
from kgenrich.kg.review import ReviewRow
from kgenrich.pipeline.assemble import exported
from kgenrich.pipeline.merge_log import MergeRecord
from kgenrich.pipeline.report import RunReport
from kgenrich.runs.report import RenderedReport
from kgenrich.settings import ExportSettings, PushSettings
from kgenrich.verification.confidence import ConfidenceModel


def read_ontology(path: Path) -> Ontology:
    return load_ontology(path)


def read_items(path: Path, mapping: CatalogMapping, *, ontology: Ontology) -> list[Item]:
    del ontology  # relations are checked by the catalog stage, which records rejections
    return read_catalog(path, mapping=mapping)


def read_seed_graph(
    path: Path | None, *, format: str, link: Path | None, on_error: str, ontology: Ontology,
    relation_map: Mapping[str, str] | None = None,
) -> SeedGraph | None:
    """The seed KG at `path` (None: no seed). `format` and `on_error` as `read_seed` takes them;
    they arrive as flow-parameter strings. `relation_map` is `seed.relation_map`."""
    if path is None:
        return None
    return read_seed(path, format=cast(SeedFormat, format), ontology=ontology, link=link,
                     on_error=cast(OnError, on_error), relation_map=relation_map)


@dataclass(frozen=True)
class _ExportJob:
    """What every writer may need; RDF keeps every triple (asserting those whose decision is in
    `asserted`, the others as candidate statements), GraphML has edges for `asserted` only,
    recommender files only `rec_triples` (the decisions in `export.include`)."""

    entities: Sequence[Entity]
    triples: Sequence[Triple]
    rec_triples: Sequence[Triple]
    items: Sequence[str] | None
    interactions: InteractionTable | None
    base_iri: str
    asserted: frozenset[Decision]
    recbole_dataset: str


#: What a writer wrote, and its counts (empty for writers that report none).
_Written = tuple[Path, dict[str, int]]


@dataclass(frozen=True)
class WrittenExports:
    """The files an export wrote (by format, in writing order) and each recommender writer's
    counts, including what it dropped for its consumer (`dropped_items`,
    `dropped_interactions`)."""

    paths: dict[str, Path]
    counts: dict[str, dict[str, int]]


def _turtle(out_dir: Path, job: _ExportJob) -> _Written:
    from kgenrich.kg.export import rdf

    rdf.write_turtle(out_dir / "graph.ttl", entities=job.entities, triples=job.triples,
                     base=job.base_iri, fact_decisions=job.asserted)
    return out_dir / "graph.ttl", {}


def _nquads(out_dir: Path, job: _ExportJob) -> _Written:
    from kgenrich.kg.export import rdf

    rdf.write_nquads(out_dir / "graph.nq", entities=job.entities, triples=job.triples,
                     base=job.base_iri, fact_decisions=job.asserted)
    return out_dir / "graph.nq", {}


def _graphml(out_dir: Path, job: _ExportJob) -> _Written:
    from kgenrich.kg.export import graph as gexp

    gexp.write_graphml(out_dir / "graph.graphml", entities=job.entities, triples=job.triples,
                       edge_decisions=job.asserted)
    return out_dir / "graph.graphml", {}


def _ripplenet(out_dir: Path, job: _ExportJob) -> _Written:
    from kgenrich.kg.export import ripplenet

    counts = ripplenet.write_ripplenet(
        out_dir / "ripplenet", items=job.items, entities=job.entities, triples=job.rec_triples,
        interactions=job.interactions.records() if job.interactions else None)
    return out_dir / "ripplenet", counts


def _recbole(out_dir: Path, job: _ExportJob) -> _Written:
    from kgenrich.kg.export import recbole

    folder = out_dir / "recbole" / job.recbole_dataset
    counts = recbole.write_recbole(
        folder, dataset=job.recbole_dataset, entities=job.entities, triples=job.rec_triples,
        interactions=job.interactions)
    return folder, counts


def _parquet(out_dir: Path, job: _ExportJob) -> _Written:
    from kgenrich.kg.export import parquet

    parquet.write_parquet(out_dir, entities=job.entities, triples=job.triples)
    return out_dir / parquet.TRIPLES_FILE, {}


#: One writer per `kgenrich.settings.ExportFormat`, run in this order (a test checks the names
#: match the Literal, so a format cannot be accepted and then silently not written).
WRITERS: dict[str, Callable[[Path, _ExportJob], _Written]] = {
    "turtle": _turtle,
    "nquads": _nquads,
    "graphml": _graphml,
    "ripplenet": _ripplenet,
    "recbole": _recbole,
    "parquet": _parquet,
}

#: What a run records beside its exports so `kgenrich export` can redo them without loss: the
#: catalog's item order (which fixes the RippleNet ints) and a copy of the interactions.
EXPORT_INPUTS = "export_inputs.json"
INTERACTIONS_DIR = "interactions"


@dataclass(frozen=True)
class ExportInputs:
    """The item order and interactions file a run's exports were written from (None: not
    recorded, as for runs written before this record existed)."""

    items: list[str] | None
    interactions: Path | None


def read_export_inputs(run_dir: Path) -> ExportInputs:
    """What `write_exports` recorded in `run_dir`; nothing recorded reads as no items order and
    no interactions."""
    file = Path(run_dir) / EXPORT_INPUTS
    if not file.is_file():
        return ExportInputs(items=None, interactions=None)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        items, inter = data["items"], data["interactions"]
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"not an export-inputs record: {err}", file=str(file)) from err
    return ExportInputs(items=None if items is None else [str(i) for i in items],
                        interactions=None if inter is None else Path(run_dir) / inter)


def _record_inputs(staging: Path, items: Sequence[str] | None, interactions: Path | None) -> None:
    import shutil

    copy: str | None = None
    if interactions is not None:
        # A copy, not the path: the run folder then holds everything its exports came from.
        with atomic_dir(staging / INTERACTIONS_DIR) as folder:
            shutil.copyfile(interactions, folder / interactions.name)
        copy = f"{INTERACTIONS_DIR}/{interactions.name}"
    with atomic_write(staging / EXPORT_INPUTS) as f:
        json.dump({"items": None if items is None else list(items), "interactions": copy}, f,
                  ensure_ascii=False)


def write_exports(
    out_dir: Path,
    *,
    entities: Sequence[Entity],
    triples: Sequence[Triple],
    items: Sequence[str] | None,
    interactions: Path | None,
    settings: ExportSettings,
) -> WrittenExports:
    """Every export of a run, swapped into `out_dir` together (`kg.atomic.staged_exports`): a
    failure or a kill leaves the previous exports whole, and an OSError becomes `ExportError`
    naming the export. Besides the formats, the canonical JSONL dump (everything, rejected
    triples included) and the export-inputs record (`items` order, a copy of `interactions`,
    read back by `read_export_inputs`). Other files in `out_dir` are left alone."""
    out_dir = Path(out_dir)
    # Read once, for both recommender writers, and only if one of them runs.
    wanted = bool({"ripplenet", "recbole"} & set(settings.formats))
    job = _ExportJob(entities=entities, triples=triples,
                     rec_triples=exported(triples, include=settings.include), items=items,
                     interactions=read_interaction_table(interactions)
                     if interactions is not None and wanted else None,
                     base_iri=settings.base_iri, recbole_dataset=settings.recbole_dataset,
                     asserted=asserted_decisions(settings))
    paths: dict[str, Path] = {}
    counts: dict[str, dict[str, int]] = {}
    try:
        with staged_exports(out_dir) as staging:
            steps: list[tuple[str, Callable[[Path, _ExportJob], _Written]]] = [
                (name, write) for name, write in WRITERS.items() if name in settings.formats]
            steps.append(("jsonl", _jsonl))
            for name, write in steps:
                try:
                    written, written_counts = write(staging, job)
                except OSError as err:
                    raise ExportError(
                        f"{out_dir}: writing the {name} export failed: {err}; the previous "
                        f"exports are unchanged", path=str(out_dir)) from err
                paths[name] = out_dir / written.relative_to(staging)
                if written_counts:
                    counts[name] = written_counts
            try:
                _record_inputs(staging, items, interactions)
            except OSError as err:
                raise ExportError(f"{out_dir / EXPORT_INPUTS}: {err}; the previous exports are "
                                  f"unchanged", path=str(out_dir / EXPORT_INPUTS)) from err
    except OSError as err:  # creating or fsyncing the staging folder
        raise ExportError(f"{out_dir}: exports not written: {err}", path=str(out_dir)) from err
    return WrittenExports(paths=paths, counts=counts)


def _jsonl(out_dir: Path, job: _ExportJob) -> _Written:
    from kgenrich.kg.export import jsonl

    jsonl.write_jsonl(out_dir, entities=job.entities, triples=job.triples)
    return out_dir / jsonl.TRIPLES_FILE, {}


def asserted_decisions(settings: ExportSettings) -> frozenset[Decision]:
    """The decisions `export.assert_decisions` names, as records' `Decision`s."""
    return frozenset(Decision(d) for d in settings.assert_decisions)


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an OSError (disk full, read-only, a file in the way) into a `PathError` naming
    `path`: one line for the user instead of a traceback."""
    try:
        yield
    except OSError as err:
        raise PathError.from_os_error(err, path=str(path)) from err


def write_report(folder: Path, report: RunReport, rendered: RenderedReport) -> None:
    """``report.md``, ``report.html`` (one self-contained page) and ``report.json``."""
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("report.md", rendered.markdown), ("report.html", rendered.html),
                       ("report.json", report.model_dump_json(indent=2))):
        with writing(folder / name), atomic_write(folder / name) as f:
            f.write(text)


def dump_json(path: Path, data: Mapping[str, object]) -> None:
    with writing(path), atomic_write(path) as f:
        json.dump(data, f, indent=2)


def previous_triples(out_dir: Path) -> list[Triple]:
    """The triples of the run last written to ``out_dir`` (none if it holds no run)."""
    recover_staged(out_dir)  # a swap a kill interrupted is completed first
    return read_run(out_dir)[1] if (out_dir / "triples.jsonl").is_file() else []


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


def write_jsonl(path: Path, rows: Sequence[BaseModel | Mapping[str, Any]]) -> Path:
    """One JSON object per line, written atomically (records or plain dicts)."""
    with writing(path), atomic_write(path) as f:
        for row in rows:
            f.write((row.model_dump_json() if isinstance(row, BaseModel)
                     else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def previous_review(path: Path) -> list[ReviewRow]:
    """The verdicts already written to the review file at `path` (none if there is none)."""
    return read_review(path) if path.is_file() else []


def write_run_outputs(
    out_dir: Path, *, entities: Sequence[Entity], triples: Sequence[Triple],
    items: Sequence[str], interactions: Path | None, settings: ExportSettings,
    store: Path | None, reviewed: Sequence[ReviewRow], failures: Sequence[BaseModel],
    retractions: Sequence[Mapping[str, Any]], merges: Sequence[MergeRecord] = (),
    probes: Sequence[Mapping[str, Any]] | None = None,
) -> WrittenExports:
    """Everything an enrich run writes besides its report: the exports, the graph store (if
    given), the review queue (keeping verdicts already written; entity resolution's merges
    are rows of it too), the merge log, failures, retractions and the labelled calibration
    probes (None: this run had none, so an earlier run's file is removed rather than left to
    describe thresholds this run did not use)."""
    from kgenrich.pipeline.merge_log import merge_review_rows
    from kgenrich.pipeline.review import review_queue

    exports = write_exports(out_dir, entities=entities, triples=triples, items=items,
                            interactions=interactions, settings=settings)
    outputs = dict(exports.paths)
    if store is not None:
        from kgenrich.kg.store import GraphStore  # local: opens pyoxigraph

        # Loading is idempotent: re-verified triples replace their old statements.
        with writing(store), GraphStore.open(store, base=settings.base_iri) as gstore:
            gstore.load(entities, triples, fact_decisions=asserted_decisions(settings))
        outputs["store"] = store
    previous = {r.key: r for r in reviewed}
    queue = review_queue(triples, labels={e.id: e.label for e in entities}, previous=previous)
    queue += merge_review_rows(merges, previous=previous)
    outputs["review"] = write_jsonl(out_dir / "review.jsonl", queue)
    outputs["merges"] = write_jsonl(out_dir / "merges.jsonl", merges)
    outputs["failures"] = write_jsonl(out_dir / "failures.jsonl", failures)
    if retractions:
        outputs["retractions"] = write_jsonl(out_dir / "retractions.jsonl", retractions)
    if probes is not None:
        outputs["calibration_probes"] = write_jsonl(out_dir / "calibration_probes.jsonl", probes)
    else:
        (out_dir / "calibration_probes.jsonl").unlink(missing_ok=True)
    return WrittenExports(paths=outputs, counts=exports.counts)


def push_outputs(out_dir: Path, *, push: PushSettings,
                 export: ExportSettings) -> dict[str, dict[str, int]]:
    """Push the run's graphs to `push.endpoint` when one is set (`kgenrich.kg.push`); for the
    report's exports: {"push": triples per graph}, or nothing."""
    if push.endpoint is None:
        return {}
    from kgenrich.kg.push import push_run

    report = push_run(out_dir, endpoint=push.endpoint.get_secret_value(), base=export.base_iri,
                      timeout=push.timeout_s, fact_decisions=asserted_decisions(export),
                      default_graph=push.default_graph)
    return {"push": report.counts()}
