"""Embedded graph store (Oxigraph, on disk or in memory) with SPARQL over our records.

Loaded from `kg/export/rdf.py`'s N-Quads, with the same assertion policy: facts (only the
decisions in `fact_decisions`, default trusted and accepted) in one named graph per provenance
source (`<base>graph/seed`, `/catalog`, `/extracted`, `/completed`), entity descriptions and
reified statements (provenance, scores) in the default graph. Unlike the file, the store keeps the
candidates' statements (no `kge:graph`: not asserted) in the default graph too, so one query sees
every statement; its N-Quads and TriG exports put them back in `<base>graph/candidates`, as
`write_nquads` does. Retractions move
the item's statements to `<base>graph/retracted` with a PROV-O invalidation (time, reason, run)
and drop the facts they supported, so history is data, not a silent delete.

Filter by source and confidence (`rdf kge kgr prov ...` prefixes are predeclared):
    SELECT ?h ?t ?c WHERE {
      ?s rdf:subject ?h ; rdf:predicate kgr:directed_by ; rdf:object ?t ;
         kge:source "completed" ; kge:confidence ?c ; kge:graph ?g .
      FILTER(?c > 0.8)
      GRAPH ?g { ?h kgr:directed_by ?t }
    }
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, cast, get_args
from urllib.parse import quote

import pyoxigraph as ox
from rdflib import PROV, RDF, RDFS, SKOS, VOID, XSD, Graph

from kgenrich.errors import ConfigError, ExportError, InputError
from kgenrich.kg.atomic import atomic_write
from kgenrich.kg.export.rdf import DEFAULT_FACT_DECISIONS, literal, write_nquads
from kgenrich.kg.ids import item_entity_id
from kgenrich.kg.namespace import (
    CANDIDATES,
    KGN,
    KGN_IRI,
    KGR,
    KGT,
    check_base,
    entity_iri,
    graph_iri,
)
from kgenrich.kg.records import TRUSTED_SOURCES, Decision, Entity, SourceKind, Triple
from kgenrich.kg.sparql_guard import check_read_only_query

logger = logging.getLogger(__name__)

ExportFormat = Literal["turtle", "nquads", "trig", "ntriples"]
CountBy = Literal["source", "decision", "graph"]
QueryResult = list[dict[str, str]] | bool | Graph

LLM_SOURCES: frozenset[SourceKind] = frozenset(SourceKind) - TRUSTED_SOURCES
# What `retract` removes by default: everything the pipeline derived for an item. Seed facts are
# the user's own graph, not the item's, and stay unless asked for.
RETRACTABLE_SOURCES: frozenset[SourceKind] = frozenset(SourceKind) - {SourceKind.SEED}
RETRACTED = "retracted"  # graph_iri(base, RETRACTED) holds retracted statements and their events

# Predeclared for queries and used in Turtle/TriG output.
PREFIXES: dict[str, str] = {
    "rdf": str(RDF),
    "rdfs": str(RDFS),
    "xsd": str(XSD),
    "skos": str(SKOS),
    "prov": str(PROV),
    "kge": KGN_IRI,
    "kgr": str(KGR),
    "kgt": str(KGT),
}
_PROLOGUE = "".join(f"PREFIX {p}: <{iri}>\n" for p, iri in PREFIXES.items())

# The store remembers its base IRI (VoID's "common prefix of all entity URIs") in a graph of
# its own, outside every export.
_META = ox.NamedNode("urn:kgenrich:store")
_URI_SPACE = ox.NamedNode(str(VOID.uriSpace))
_DEFAULT = ox.DefaultGraph()
_RDF_TYPE = ox.NamedNode(str(RDF.type))
_RDF_SUBJECT = ox.NamedNode(str(RDF.subject))
_RDF_PREDICATE = ox.NamedNode(str(RDF.predicate))
_RDF_OBJECT = ox.NamedNode(str(RDF.object))
_KGN_GRAPH = ox.NamedNode(str(KGN.graph))
_KGN_FIELDS = (ox.NamedNode(str(KGN.catalogText)), ox.NamedNode(str(KGN.catalogAttribute)))
_KGN_SOURCE = ox.NamedNode(str(KGN.source))
_KGN_ITEM_ID = ox.NamedNode(str(KGN.itemId))
_RDF_STATEMENT = ox.NamedNode(str(RDF.Statement))
_FORMATS: dict[str, ox.RdfFormat] = {
    "turtle": ox.RdfFormat.TURTLE,
    "ntriples": ox.RdfFormat.N_TRIPLES,
    "nquads": ox.RdfFormat.N_QUADS,
    "trig": ox.RdfFormat.TRIG,
}
_FactKey = tuple[ox.NamedNode, ox.NamedNode, ox.NamedNode, ox.NamedNode]


@dataclass(frozen=True)
class LoadReport:
    """What one `load` wrote: record counts and the old statement/entity quads it replaced."""

    entities: int
    statements: int
    facts: int
    replaced_quads: int
    seconds: float


@dataclass(frozen=True)
class Retraction:
    """What one `retract` call moved to the retracted graph."""

    items: tuple[str, ...]
    statements: int
    facts: int
    at: datetime
    reason: str
    run: str


class GraphStore:
    """An Oxigraph dataset holding our records; build it with `GraphStore.open`."""

    def __init__(self, store: ox.Store, *, path: Path | None, base: str | None,
                 read_only: bool = False) -> None:
        self._store: ox.Store | None = store
        self.path = path
        self._base = base
        self.read_only = read_only

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | None, *, base: str | None = None) -> GraphStore:
        """Open (or create) the store at `path`; None keeps it in memory.

        `base` is the entity base IRI (settings `export.base_iri`). It is recorded in the store on
        first use, so later opens may omit it; a different one is a `ConfigError`.
        """
        if base is not None:
            try:
                check_base(base)
            except ValueError as err:
                raise ConfigError(str(err)) from err
        if path is not None:
            _check_store_dir(path)
        try:
            store = ox.Store(str(path)) if path is not None else ox.Store()
        except OSError as err:
            raise InputError(
                "cannot open the graph store (is another process using it?)",
                file=str(path),
                got=str(err),
            ) from err
        recorded = next(
            (
                q.object.value
                for q in store.quads_for_pattern(_META, _URI_SPACE, None, _META)
                if isinstance(q.object, ox.Literal)
            ),
            None,
        )
        if recorded is not None and base is not None and recorded != base:
            raise ConfigError(f"store {path} was built with base IRI {recorded!r}, not {base!r}")
        if recorded is None and base is not None:
            store.add(ox.Quad(_META, _URI_SPACE, ox.Literal(base), _META))
        return cls(store, path=path, base=recorded or base)

    @classmethod
    def open_existing(cls, path: Path) -> GraphStore:
        """Open the store at `path` read-only, for queries; never creates one.

        Raises:
            InputError: `path` is missing, not a directory, empty, or holds no Oxigraph store.
        """
        if not path.is_dir():
            raise InputError("no graph store here (build one with `kgenrich run --store`)",
                             file=str(path))
        if not (path / "CURRENT").is_file():
            what = "empty directory" if not any(path.iterdir()) else "directory"
            raise InputError(f"{what} without a graph store (build one with `kgenrich run "
                             "--store`)", file=str(path))
        try:
            store = ox.Store.read_only(str(path))
        except OSError as err:
            raise InputError("cannot open the graph store", file=str(path),
                             got=str(err)) from err
        recorded = next(
            (q.object.value for q in store.quads_for_pattern(_META, _URI_SPACE, None, _META)
             if isinstance(q.object, ox.Literal)),
            None,
        )
        return cls(store, path=path, base=recorded, read_only=True)

    def close(self) -> None:
        """Flush and release the store (an on-disk store can then be reopened)."""
        if self._store is not None:
            if self.path is not None and not self.read_only:
                self._store.flush()
            self._store = None

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def base(self) -> str:
        if self._base is None:
            raise ConfigError("the store has no base IRI yet: open it with base=...")
        return self._base

    @property
    def _db(self) -> ox.Store:
        if self._store is None:
            raise InputError("the graph store is closed", file=str(self.path))
        return self._store

    def graph(self, name: SourceKind | str) -> ox.NamedNode:
        """The named graph of a source ("seed", ...) or of "retracted"."""
        return ox.NamedNode(str(graph_iri(self.base, str(name))))

    def graph_quads(self, name: SourceKind | str) -> list[ox.Quad]:
        """The quads of one named graph (`graph(name)`), e.g. of "retracted"."""
        return list(self._db.quads_for_pattern(None, None, None, self.graph(name)))

    # -- writing -------------------------------------------------------------------------------

    def load(
        self,
        entities: Iterable[Entity],
        triples: Iterable[Triple],
        *,
        fact_decisions: Iterable[Decision] = DEFAULT_FACT_DECISIONS,
    ) -> LoadReport:
        """Add records; idempotent, and a statement or entity loaded again replaces its old one.

        The records go through `kg.export.rdf.write_nquads` (so the store and the files agree)
        into a temp file, then into the store with Oxigraph's bulk writer. Blank node labels are
        kept (they derive from the statement), which is what makes a reload idempotent. A
        statement is identified by triple, source, item, model, prompt version and evidence:
        reloading it with a new decision or scores replaces the old ones, and a fact no statement
        asserts any more is dropped. Not atomic: rerun the same load after a failure.
        """
        start = time.perf_counter()
        db = self._db
        with tempfile.TemporaryDirectory(prefix="kgenrich-load-") as tmp:
            batch = Path(tmp) / "batch.nq"
            counts = write_nquads(
                batch,
                entities=entities,
                triples=triples,
                base=self.base,
                fact_decisions=fact_decisions,
            )
            replaced, refacts = 0, set[_FactKey]()
            if next(iter(db.quads_for_pattern(None, None, None, _DEFAULT)), None) is not None:
                replaced, refacts = self._forget_old_versions(batch)
            db.bulk_extend(self._batch_quads(batch))
        dropped = self._drop_unsupported_facts(refacts)
        report = LoadReport(
            entities=counts["entities"],
            statements=counts["statements"],
            facts=counts["facts"],
            replaced_quads=replaced + dropped,
            seconds=time.perf_counter() - start,
        )
        logger.info("loaded %d entities, %d statements, %d facts into the store in %.1f s "
                    "(%d old quads replaced)", report.entities, report.statements, report.facts,
                    report.seconds, report.replaced_quads)
        return report

    def _batch_quads(self, batch: Path) -> Iterator[ox.Quad]:
        """The quads of a `write_nquads` file, the candidates' statements moved to the default
        graph (the store's layout, see the module docstring)."""
        candidates = self.graph(CANDIDATES)
        for q in ox.parse(path=batch, format=ox.RdfFormat.N_QUADS, rename_blank_nodes=False):
            if q.graph_name == candidates:
                yield ox.Quad(q.subject, q.predicate, q.object, _DEFAULT)
            else:
                yield q

    def _forget_old_versions(self, batch: Path) -> tuple[int, set[_FactKey]]:
        """Remove stored quads of statements/entities in `batch` that the batch no longer has."""
        db = self._db
        stmt_prefix = self.base + "stmt/"
        removed = 0
        refacts: set[_FactKey] = set()
        default = (q for q in self._batch_quads(batch) if q.graph_name == _DEFAULT)
        for subject, group in itertools.groupby(default, key=lambda q: q.subject):
            block = set(group)
            is_stmt = isinstance(subject, ox.NamedNode) and subject.value.startswith(stmt_prefix)
            is_described = any(q.predicate == _RDF_TYPE for q in block)
            if not (is_stmt or is_described or isinstance(subject, ox.BlankNode)):
                continue  # an entity only referenced by triples: its stub adds, never replaces
            old = set(db.quads_for_pattern(subject, None, None, _DEFAULT))
            gone = old - block
            if not gone:
                continue
            if is_stmt:
                refacts |= _asserted_facts(old, gone)
            for q in gone:
                # a score or catalog-field node the new version no longer links to
                if isinstance(q.object, ox.BlankNode):
                    for bq in list(db.quads_for_pattern(q.object, None, None, _DEFAULT)):
                        db.remove(bq)
                        removed += 1
                db.remove(q)
                removed += 1
        if removed:
            logger.info("replaced %d outdated statement/entity quads", removed)
        return removed, refacts

    def _drop_unsupported_facts(self, facts: Iterable[_FactKey]) -> int:
        """Remove each fact from its graph unless some live statement still asserts it there."""
        db = self._db
        dropped = 0
        for h, r, t, g in facts:
            supported = any(
                ox.Quad(s.subject, _RDF_PREDICATE, r) in db
                and ox.Quad(s.subject, _RDF_OBJECT, t) in db
                and ox.Quad(s.subject, _KGN_GRAPH, g) in db
                for s in db.quads_for_pattern(None, _RDF_SUBJECT, h, _DEFAULT)
            )
            fact = ox.Quad(h, r, t, g)
            if not supported and fact in db:
                db.remove(fact)
                dropped += 1
        return dropped

    def retract(
        self,
        item_ids: Iterable[str],
        *,
        reason: str,
        run: str,
        sources: Iterable[SourceKind] = RETRACTABLE_SOURCES,
        at: datetime | None = None,
        event_iri: Callable[[str], str] | None = None,
    ) -> Retraction:
        """Retract every statement of the items (by `kge:itemId` or as subject) from `sources`.

        In one transaction: the statements (with their score nodes) move from the default graph
        to `<base>graph/retracted`, each linked by `prov:qualifiedInvalidation` to one event per
        item (`a prov:Invalidation; prov:atTime; kge:reason; kge:itemId; prov:activity <run>`)
        and stamped `prov:invalidatedAtTime`; the facts they asserted leave their source graphs
        unless another live statement still asserts them there. Load new records afterwards to
        replace the item's triples. `event_iri(item)` names an event (default: a new
        `urn:uuid:`); `kg.push` replays a run's retractions with stable names.
        """
        items = tuple(dict.fromkeys(item_ids))
        if not reason.strip():
            raise InputError("a retraction needs a reason", field="reason")
        when = at if at is not None else datetime.now(UTC)
        if when.tzinfo is None:
            raise InputError("timestamp must be timezone-aware", field="at", got=str(when))
        if not items:
            return Retraction(items=(), statements=0, facts=0, at=when, reason=reason, run=run)
        kinds = sorted(SourceKind(s).value for s in sources)
        if not kinds:
            raise InputError("no sources to retract from", field="sources")
        events = {
            item: event_iri(item) if event_iri is not None else f"urn:uuid:{uuid.uuid4()}"
            for item in items
        }
        # Found by index lookups here, then written by one update naming them: Oxigraph plans a
        # UNION joined to `?st a rdf:Statement` as a scan of every statement (seconds per item).
        found = self._statements_of(items, sources=kinds)
        stmts = [(st, events[item]) for item, sts in found.items() for st in sts]
        doomed = self._facts_only_supported_by({st for st, _ in stmts})
        retracted = f"<{self.graph(RETRACTED).value}>"
        stamp = f'"{when.isoformat()}"^^xsd:dateTime'
        run_iri = f"<urn:kgenrich:run:{quote(run, safe='')}>"
        event_data = "\n".join(
            f"<{ev}> a prov:Invalidation ; prov:atTime {stamp} ; kge:reason {literal(reason)} ;"
            f" kge:itemId {literal(item)} ; prov:activity {run_iri} ."
            for item, ev in events.items()
        )
        update = (
            _PROLOGUE + f"INSERT DATA {{ GRAPH {retracted} {{\n{event_data}\n"
            f"  {run_iri} a prov:Activity ; rdfs:label {literal(run)} . }} }}"
        )
        if stmts:
            pairs = " ".join(f"(<{st.value}> <{ev}>)" for st, ev in stmts)
            values = "VALUES ?st { " + " ".join(f"<{st.value}>" for st, _ in stmts) + " }"
            facts = " ".join(f"GRAPH <{g.value}> {{ {h} {r} {t} }}" for h, r, t, g in doomed)
            update += (
                f" ;\nINSERT {{ GRAPH {retracted} {{ ?st ?p ?o . ?st prov:qualifiedInvalidation"
                f" ?ev ; prov:invalidatedAtTime {stamp} }} }}\n"
                f"WHERE {{ VALUES (?st ?ev) {{ {pairs} }} ?st ?p ?o }} ;\n"
                f"INSERT {{ GRAPH {retracted} {{ ?b ?bp ?bo }} }}\n"
                f"WHERE {{ {values} ?st kge:score ?b . ?b ?bp ?bo }} ;\n"
                f"DELETE {{ ?b ?bp ?bo }} WHERE {{ {values} ?st kge:score ?b . ?b ?bp ?bo }} ;\n"
                f"DELETE {{ ?st ?p ?o }} WHERE {{ {values} ?st ?p ?o }}"
            )
            if doomed:
                update += f" ;\nDELETE DATA {{ {facts} }}"
        self._db.update(update)
        result = Retraction(
            items=items, statements=len(stmts), facts=len(doomed), at=when, reason=reason, run=run
        )
        logger.info(
            "retracted %d statements and %d facts of %d items (%s)",
            result.statements,
            result.facts,
            len(items),
            reason,
        )
        return result

    def _statements_of(
        self, items: Sequence[str], *, sources: Sequence[str]
    ) -> dict[str, list[ox.NamedNode]]:
        """Live statements per item, by `kge:itemId` or with the item as subject, from `sources`."""
        db = self._db
        kinds = [ox.Literal(k) for k in sources]
        out: dict[str, list[ox.NamedNode]] = {}
        seen: set[ox.NamedNode] = set()
        for item in items:
            iri = ox.NamedNode(str(entity_iri(self.base, item_entity_id(item))))
            candidates = [
                *(
                    q.subject
                    for q in db.quads_for_pattern(None, _KGN_ITEM_ID, ox.Literal(item), _DEFAULT)
                ),
                *(q.subject for q in db.quads_for_pattern(None, _RDF_SUBJECT, iri, _DEFAULT)),
            ]
            found = out.setdefault(item, [])
            for st in candidates:
                if (
                    isinstance(st, ox.NamedNode)
                    and st not in seen
                    and ox.Quad(st, _RDF_TYPE, _RDF_STATEMENT, _DEFAULT) in db
                    and any(ox.Quad(st, _KGN_SOURCE, k, _DEFAULT) in db for k in kinds)
                ):
                    seen.add(st)
                    found.append(st)
        return out

    def _facts_only_supported_by(self, stmts: set[ox.NamedNode]) -> list[_FactKey]:
        """The facts that no live statement outside `stmts` asserts in their graph."""
        db = self._db

        def one(subject: ox.NamedNode, predicate: ox.NamedNode) -> ox.NamedNode | None:
            q = next(iter(db.quads_for_pattern(subject, predicate, None, _DEFAULT)), None)
            return q.object if q is not None and isinstance(q.object, ox.NamedNode) else None

        def asserts(st: ox.NamedNode, fact: _FactKey) -> bool:
            h, r, t, g = fact
            return all(
                ox.Quad(st, p, o, _DEFAULT) in db
                for p, o in ((_RDF_PREDICATE, r), (_RDF_OBJECT, t), (_KGN_GRAPH, g))
            )

        doomed: dict[_FactKey, None] = {}
        for st in stmts:
            h, r, t = one(st, _RDF_SUBJECT), one(st, _RDF_PREDICATE), one(st, _RDF_OBJECT)
            g = one(st, _KGN_GRAPH)
            if h is None or r is None or t is None or g is None:
                continue  # not asserted (rejected): no fact to drop
            fact = (h, r, t, g)
            if fact in doomed or ox.Quad(h, r, t, g) not in db:
                continue
            others = (
                q.subject
                for q in db.quads_for_pattern(None, _RDF_SUBJECT, h, _DEFAULT)
                if q.subject not in stmts and isinstance(q.subject, ox.NamedNode)
            )
            if not any(asserts(other, fact) for other in others):
                doomed[fact] = None
        return list(doomed)

    # -- reading -------------------------------------------------------------------------------

    def query(
        self, sparql: str, *, sources: Iterable[SourceKind] | None = None,
        allow_service: bool = False,
    ) -> QueryResult:
        """Run a SPARQL query: SELECT -> rows of plain strings, ASK -> bool, CONSTRUCT -> Graph.

        Updates are refused, and so is `SERVICE` (an outbound request from this machine)
        unless `allow_service` (`kg.sparql_guard`).

        Row values are IRIs, literal lexical forms or `_:label`; unbound variables are left out.
        The default graph holds entities and statements; facts are in the source graphs
        (`GRAPH ?g`). With `sources`, those sources' facts are added to the default graph, so
        plain patterns see them (a fact in two sources then matches twice: use DISTINCT).
        """
        check_read_only_query(sparql, allow_service=allow_service)
        default_graph: list[ox.NamedNode | ox.BlankNode | ox.DefaultGraph] | None = None
        if sources is not None:
            default_graph = [_DEFAULT, *self._graphs(sources)]
        # The store's own bookkeeping graph stays out of GRAPH ?g.
        named = [g for g in self._db.named_graphs() if g != _META]
        try:
            result = self._db.query(
                sparql, prefixes=PREFIXES, default_graph=default_graph, named_graphs=named
            )
            if isinstance(result, ox.QueryBoolean):
                return bool(result)
            if isinstance(result, ox.QuerySolutions):
                names = [v.value for v in result.variables]
                return [{n: _plain(sol[n]) for n in names if sol[n] is not None} for sol in result]
            data = result.serialize(format=ox.RdfFormat.N_TRIPLES) or b""
        except SyntaxError as err:
            raise InputError(f"invalid SPARQL query: {err}", field="sparql") from err
        except (OSError, ValueError, RuntimeError) as err:
            raise InputError(f"SPARQL query failed: {err}", field="sparql") from err
        return Graph().parse(data=data, format="nt")

    def count(self, *, by: CountBy = "source") -> dict[str, int]:
        """Counts of the live data.

        by="source": facts per source graph; "decision": statements per decision; "graph":
        quads per graph ("default", each source, "retracted").
        """
        if by == "source":
            return {
                k.value: self._count(
                    f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{self.graph(k).value}> "
                    "{ ?s ?p ?o } }"
                )
                for k in SourceKind
            }
        if by == "decision":
            rows = self._db.query(
                _PROLOGUE + "SELECT ?d (COUNT(?st) AS ?n) WHERE { ?st a rdf:Statement ;"
                " kge:decision ?d } GROUP BY ?d"
            )
            assert isinstance(rows, ox.QuerySolutions)
            found = {sol["d"].value: int(sol["n"].value) for sol in rows}
            return {d.value: found.pop(d.value, 0) for d in Decision} | found
        if by == "graph":
            out = {"default": self._count("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }")}
            for name in [*(k.value for k in SourceKind), RETRACTED]:
                out[name] = self._count(
                    f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{self.graph(name).value}> "
                    "{ ?s ?p ?o } }"
                )
            return out
        expected = " | ".join(get_args(CountBy))
        raise InputError("unknown count", field="by", expected=expected, got=str(by))

    def _count(self, sparql: str) -> int:
        rows = self._db.query(_PROLOGUE + sparql)
        assert isinstance(rows, ox.QuerySolutions)
        return int(next(iter(rows))["n"].value)

    def _graphs(self, sources: Iterable[SourceKind]) -> list[ox.NamedNode]:
        chosen = {SourceKind(s) for s in sources}
        return [self.graph(k) for k in SourceKind if k in chosen]

    # -- export --------------------------------------------------------------------------------

    def export(
        self,
        path: str | Path,
        *,
        format: ExportFormat,
        sources: Iterable[SourceKind] | None = None,
        include_retracted: bool = False,
    ) -> None:
        """Write the live graph, atomically, with only the facts and statements of `sources`.

        None = every source; `{SourceKind.SEED, SourceKind.CATALOG}` leaves out all LLM-added
        facts, their statements and entities only they mention. "nquads"/"trig" keep the graphs
        (as `write_nquads` does); "turtle"/"ntriples" write their union as one graph (as
        `write_turtle` does). `include_retracted` adds the retracted graph (dataset formats only).
        """
        if format not in _FORMATS:
            raise ExportError(f"{path}: unknown format {format!r}; expected one of {[*_FORMATS]}")
        chosen = set(SourceKind) if sources is None else {SourceKind(s) for s in sources}
        graphs = self._graphs(chosen)
        dataset = format in ("nquads", "trig")
        if include_retracted and not dataset:
            raise ExportError(
                f"{path}: the retracted graph only exports to a dataset format (nquads, trig)"
            )
        drop = self._excluded_subjects(chosen) if chosen != set(SourceKind) else set()
        # Dataset formats put the candidates' statements in their own graph, as write_nquads.
        candidates = self._candidate_subjects() - drop if dataset else set()
        if include_retracted:
            graphs.append(self.graph(RETRACTED))
        try:
            with atomic_write(path, mode="wb") as handle:
                if format == "trig":
                    self._write_trig(handle, drop=drop, graphs=graphs, candidates=candidates)
                else:
                    self._write_lines_or_turtle(
                        handle, format, drop=drop, graphs=graphs, candidates=candidates
                    )
        except OSError as err:
            raise ExportError(f"{path}: cannot write the {format} export: {err}") from err
        logger.info("exported %s (%s, sources=%s)", path, format, sorted(k.value for k in chosen))

    def _write_trig(
        self,
        handle: IO[bytes],
        *,
        drop: set[ox.NamedNode | ox.BlankNode],
        graphs: list[ox.NamedNode],
        candidates: set[ox.NamedNode | ox.BlankNode],
    ) -> None:
        db = self._db
        cand = self.graph(CANDIDATES)
        quads = itertools.chain(
            (
                ox.Quad(q.subject, q.predicate, q.object, cand) if q.subject in candidates else q
                for q in db.quads_for_pattern(None, None, None, _DEFAULT)
                if q.subject not in drop
            ),
            *(db.quads_for_pattern(None, None, None, g) for g in graphs),
        )
        ox.serialize(quads, handle, ox.RdfFormat.TRIG, prefixes=PREFIXES)

    def _write_lines_or_turtle(
        self,
        handle: IO[bytes],
        format: ExportFormat,
        *,
        drop: set[ox.NamedNode | ox.BlankNode],
        graphs: list[ox.NamedNode],
        candidates: set[ox.NamedNode | ox.BlankNode],
    ) -> None:
        """N-Quads, N-Triples or Turtle: the default graph, then the facts (N-Quads: then the
        candidates' statements in their graph).

        Oxigraph's own `dump` writes whatever needs no filtering without a round trip through
        Python objects (4x faster on disk). N-Quads: the graphs' N-Triples lines get their graph
        name appended. Turtle/N-Triples: the facts come from one CONSTRUCT, which returns each
        fact once however many source graphs hold it; a second Turtle prefix block is valid.
        """
        db = self._db
        fmt = ox.RdfFormat.TURTLE if format == "turtle" else ox.RdfFormat.N_TRIPLES
        prefixes = PREFIXES if format == "turtle" else None
        if drop or candidates:
            skip = drop | candidates
            kept = (
                q.triple
                for q in db.quads_for_pattern(None, None, None, _DEFAULT)
                if q.subject not in skip
            )
            ox.serialize(kept, handle, fmt, prefixes=prefixes)
        else:
            db.dump(handle, fmt, from_graph=_DEFAULT, prefixes=prefixes)
        if candidates:
            cand = self.graph(CANDIDATES)
            moved = (
                ox.Quad(q.subject, q.predicate, q.object, cand)
                for q in db.quads_for_pattern(None, None, None, _DEFAULT)
                if q.subject in candidates
            )
            ox.serialize(moved, handle, ox.RdfFormat.N_QUADS)
        if format == "nquads":
            for g in graphs:
                labeler = _GraphLabeler(handle, g)
                # pyoxigraph only calls write() and flush() on its output.
                db.dump(cast(IO[bytes], labeler), ox.RdfFormat.N_TRIPLES, from_graph=g)
                labeler.close()
            return
        values = " ".join(f"<{g.value}>" for g in graphs)
        facts = db.query(
            f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ VALUES ?g {{ {values} }} GRAPH ?g {{ ?s ?p ?o }} }}"
        )
        assert isinstance(facts, ox.QueryTriples)
        if prefixes is None:
            facts.serialize(handle, fmt)
        else:
            ox.serialize(facts, handle, fmt, prefixes=prefixes)

    def _candidate_subjects(self) -> set[ox.NamedNode | ox.BlankNode]:
        """The statements no fact graph holds (no `kge:graph`), with their score nodes."""
        rows = self._db.query(
            _PROLOGUE + "SELECT ?st ?b WHERE { ?st a rdf:Statement ."
            " FILTER NOT EXISTS { ?st kge:graph ?g } OPTIONAL { ?st kge:score ?b } }"
        )
        assert isinstance(rows, ox.QuerySolutions)
        return {
            term
            for row in rows
            for term in row
            if isinstance(term, ox.NamedNode | ox.BlankNode)
        }

    def _excluded_subjects(self, keep: set[SourceKind]) -> set[ox.NamedNode | ox.BlankNode]:
        """Default-graph subjects an export of `keep` leaves out.

        Statements of other sources, their score nodes, and entities whose own source is not
        kept unless a kept statement mentions them: the result then matches `write_turtle` and
        `write_nquads` over the filtered records. Computed here rather than as one SPARQL filter,
        which Oxigraph evaluates per quad (measured 5x slower).
        """
        kept = ", ".join(literal(k.value) for k in sorted(keep)) or '""'

        def column(sparql: str) -> set[ox.NamedNode | ox.BlankNode]:
            rows = self._db.query(_PROLOGUE + sparql)
            assert isinstance(rows, ox.QuerySolutions)
            return {term for row in rows for term in row if term is not None}

        drop = column(
            "SELECT ?st ?b WHERE { ?st a rdf:Statement ; kge:source ?src .\n"
            f"  FILTER(?src NOT IN ({kept})) OPTIONAL {{ ?st kge:score ?b }} }}"
        )
        mentioned = column(
            "SELECT DISTINCT ?x WHERE { ?st a rdf:Statement ; kge:source ?src .\n"
            f"  FILTER(?src IN ({kept})) {{ ?st rdf:subject ?x }} UNION {{ ?st rdf:object ?x }} }}"
        )
        foreign = column(
            "SELECT ?x WHERE { ?x kge:entityId ?id .\n"
            f"  FILTER NOT EXISTS {{ ?x kge:source ?src . FILTER(?src IN ({kept})) }} }}"
        )
        dropped = foreign - mentioned
        # and the catalog-field nodes of the entities left out
        fields = {
            q.object
            for x in dropped
            for p in _KGN_FIELDS
            for q in self._db.quads_for_pattern(x, p, None, _DEFAULT)
            if isinstance(q.object, ox.BlankNode)
        }
        return drop | dropped | fields


class _GraphLabeler:
    """A binary writer that turns Oxigraph's N-Triples lines (`... .\\n`) into N-Quads lines of
    one graph. Literals never hold a raw line break in N-Triples, so lines split safely."""

    def __init__(self, out: IO[bytes], graph: ox.NamedNode) -> None:
        self._out = out
        self._suffix = f" <{graph.value}> .\n".encode()
        self._rest = b""

    def write(self, data: bytes) -> int:
        lines = (self._rest + bytes(data)).split(b"\n")
        self._rest = lines.pop()
        if lines:
            self._out.write(b"".join(line[:-2] + self._suffix for line in lines))
        return len(data)

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        if self._rest.strip():
            raise ExportError(f"unterminated N-Triples line from Oxigraph: {self._rest[:80]!r}")


def _asserted_facts(old: set[ox.Quad], gone: set[ox.Quad]) -> set[_FactKey]:
    """The facts an old statement version asserted in graphs it no longer names."""
    parts = {q.predicate: q.object for q in old if q.predicate in _SPO}
    h, r, t = parts.get(_RDF_SUBJECT), parts.get(_RDF_PREDICATE), parts.get(_RDF_OBJECT)
    if not (isinstance(h, ox.NamedNode) and isinstance(r, ox.NamedNode)):
        return set()
    if not isinstance(t, ox.NamedNode):
        return set()
    return {
        (h, r, t, q.object)
        for q in gone
        if q.predicate == _KGN_GRAPH and isinstance(q.object, ox.NamedNode)
    }


_SPO = (_RDF_SUBJECT, _RDF_PREDICATE, _RDF_OBJECT)


def _plain(term: ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple) -> str:
    if isinstance(term, ox.NamedNode | ox.Literal):
        return term.value
    if isinstance(term, ox.BlankNode):
        return f"_:{term.value}"
    return str(term)


def _check_store_dir(path: Path) -> None:
    """Refuse a path Oxigraph would litter: a file, or a non-empty directory that is no store."""
    if not path.exists():
        return
    if not path.is_dir():
        raise InputError("not a directory; a graph store is a directory", file=str(path))
    if any(path.iterdir()) and not (path / "CURRENT").exists():
        raise InputError(
            "non-empty directory that is not an Oxigraph store; refusing to use it",
            file=str(path),
        )


def source_names(sources: Sequence[str]) -> set[SourceKind]:
    """Parse source names ("seed", "catalog", ...) given by a user; InputError on a bad one."""
    out: set[SourceKind] = set()
    for name in sources:
        try:
            out.add(SourceKind(name.strip()))
        except ValueError as err:
            raise InputError(
                "unknown source",
                field="sources",
                expected=" | ".join(k.value for k in SourceKind),
                got=name,
            ) from err
    return out
