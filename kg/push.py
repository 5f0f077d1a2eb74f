"""Push a run's graphs into a SPARQL 1.1 store over the Graph Store HTTP Protocol.

Each graph of `OUT/graph.nq` goes in one PUT, which replaces it as a unit, so pushing the same
output again changes nothing: the default graph (entities, statements of the facts), one graph
per provenance source, `<base>graph/candidates` and `<base>graph/retracted`. The retracted
graph is rebuilt from `OUT/retractions.jsonl` by replaying each retraction through
`GraphStore.retract`, with event IRIs derived from the row (unless graph.nq already holds one,
as a store export with `include_retracted` does). A graph of ours that the output lacks is
deleted, so a source whose last facts were retracted empties. Not atomic across graphs: after a
failure, push again.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import pyoxigraph as ox

from kgenrich.errors import ConfigError, InputError, PushError
from kgenrich.kg.export.rdf import DEFAULT_FACT_DECISIONS
from kgenrich.kg.namespace import CANDIDATES, graph_iri
from kgenrich.kg.records import Decision, SourceKind, Triple
from kgenrich.kg.redact import redact_url
from kgenrich.kg.store import RETRACTED, GraphStore

logger = logging.getLogger(__name__)

NQUADS_FILE = "graph.nq"
RETRACTIONS_FILE = "retractions.jsonl"
_NTRIPLES = "application/n-triples"
_CHUNK = 1 << 20
_DEFAULT = ox.DefaultGraph()
Action = Literal["created", "replaced", "deleted", "absent"]


@dataclass(frozen=True)
class RetractedItem:
    """One row of `retractions.jsonl`, as far as the retracted graph needs it."""

    run: str
    at: datetime
    item_id: str
    reason: str
    triples: tuple[Triple, ...]


@dataclass(frozen=True)
class GraphPush:
    """What one request did to one graph: `graph` is its IRI, or "default"."""

    graph: str
    triples: int
    action: Action
    status: int


@dataclass(frozen=True)
class PushReport:
    """Every graph a push sent or deleted, in request order; `endpoint` has no credentials."""

    endpoint: str
    graphs: tuple[GraphPush, ...]
    seconds: float

    def counts(self) -> dict[str, int]:
        """Triples sent per graph (0 for a deleted one)."""
        return {g.graph: g.triples for g in self.graphs}


# -- reading the run's output ------------------------------------------------------------------


def read_retractions(path: Path) -> list[RetractedItem]:
    """The rows of a run's `retractions.jsonl` (kgenrich.runs.bookkeeping.RetractionRow)."""
    rows: list[RetractedItem] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            at = datetime.fromisoformat(row["at"])
            item = RetractedItem(
                run=str(row["run"]), at=at, item_id=str(row["item_id"]),
                reason=str(row["reason"]),
                triples=tuple(Triple.model_validate(t) for t in row.get("triples", [])))
        except (ValueError, KeyError, TypeError) as err:  # pydantic's ValidationError too
            raise InputError("bad retraction row", file=str(path), line=n,
                             expected="JSON with run, at, item_id, reason and triples",
                             got=line) from err
        if at.tzinfo is None:
            raise InputError("timestamp must be timezone-aware", file=str(path), line=n,
                             field="at", got=row["at"])
        rows.append(item)
    return rows


def _event_iri(row: RetractedItem) -> str:
    # Stable across pushes (the store's own retract names events with random UUIDs).
    key = f"urn:kgenrich:retraction:{row.run}\x1f{row.item_id}\x1f{row.at.isoformat()}"
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, key)}"


def retracted_quads(
    rows: Iterable[RetractedItem], *, base: str,
    fact_decisions: Iterable[Decision] = DEFAULT_FACT_DECISIONS,
) -> list[ox.Quad]:
    """The retracted graph `GraphStore.retract` builds from these retractions: each row's
    statements with its invalidation event. The same rows always give the same quads."""
    decisions = frozenset(fact_decisions)
    out: list[ox.Quad] = []
    rdf_log = logging.getLogger("kgenrich.kg.export.rdf")
    # The scratch stores hold statements only (their entities are in graph.nq): the exporter's
    # "no Entity record" warning would be noise, once per row.
    rdf_log.addFilter(_no_missing_entity_warning)
    try:
        for row in rows:
            out.extend(_replay(row, base=base, fact_decisions=decisions))
    finally:
        rdf_log.removeFilter(_no_missing_entity_warning)
    return out


def _no_missing_entity_warning(record: logging.LogRecord) -> bool:
    return "have no Entity record" not in str(record.msg)


def _replay(
    row: RetractedItem, *, base: str, fact_decisions: frozenset[Decision]
) -> list[ox.Quad]:
    """One row's part of the retracted graph. A scratch store per row: a statement retracted
    twice (an item removed, re-added, removed again) then carries both events, as in a store
    that saw both."""
    with GraphStore.open(None, base=base) as scratch:
        scratch.load([], row.triples, fact_decisions=fact_decisions)
        scratch.retract([row.item_id], reason=row.reason, run=row.run, at=row.at,
                        event_iri=lambda _item: _event_iri(row))
        return scratch.graph_quads(RETRACTED)


def run_dataset(
    out_dir: Path, *, base: str, fact_decisions: Iterable[Decision] = DEFAULT_FACT_DECISIONS,
) -> ox.Store:
    """What a push sends, in memory: `graph.nq`, plus the retracted graph rebuilt from
    `retractions.jsonl` when graph.nq has none.

    Raises:
        InputError: no such folder, no graph.nq, a file that does not parse, or a named graph
            outside `<base>graph/` (the run used another `export.base_iri`).
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError("not a run's output folder", file=str(out_dir))
    nquads = out_dir / NQUADS_FILE
    if not nquads.is_file():
        raise InputError("no graph.nq here: a run writes it when export.formats has nquads",
                         file=str(nquads))
    dataset = ox.Store()
    try:
        dataset.bulk_load(path=nquads, format=ox.RdfFormat.N_QUADS)
    except (SyntaxError, OSError) as err:
        raise InputError(f"cannot read N-Quads: {err}", file=str(nquads)) from err
    prefix = f"{base}graph/"
    for g in dataset.named_graphs():
        if not (isinstance(g, ox.NamedNode) and g.value.startswith(prefix)):
            name = g.value if isinstance(g, ox.NamedNode) else f"_:{g.value}"
            hint = name.rsplit("graph/", 1)[0] if "graph/" in name else None
            raise InputError(
                f"graph <{name}> is not one of kgenrich's graphs under <{prefix}>"
                + (f" (was the run made with --set export.base_iri={hint}?)" if hint else ""),
                file=str(nquads))
    retracted = ox.NamedNode(str(graph_iri(base, RETRACTED)))
    rows_file = out_dir / RETRACTIONS_FILE
    if rows_file.is_file():
        if retracted in set(dataset.named_graphs()):
            logger.info("%s holds the retracted graph; %s is not replayed", nquads, rows_file)
        else:
            rows = read_retractions(rows_file)
            dataset.extend(retracted_quads(rows, base=base, fact_decisions=fact_decisions))
            logger.info("replayed %d retraction(s) from %s", len(rows), rows_file)
    return dataset


# -- the Graph Store Protocol ------------------------------------------------------------------


def check_endpoint(endpoint: str) -> None:
    """Raise ConfigError unless `endpoint` is an http(s) URL (the message masks credentials)."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"push.endpoint: expected the http(s) URL of a Graph Store Protocol "
                          f"endpoint (e.g. http://127.0.0.1:7878/store), got "
                          f"{redact_url(endpoint)!r}")


class GraphStoreClient:
    """PUT and DELETE of whole graphs by indirect identification (`?graph=IRI`, `?default`).
    Credentials in the URL's user-info go out as HTTP Basic auth, never into a URL that is
    logged or a message."""

    def __init__(
        self, endpoint: str, *, timeout: float, transport: httpx.BaseTransport | None = None
    ) -> None:
        check_endpoint(endpoint)
        self.where = redact_url(endpoint)
        parts = urlsplit(endpoint)
        self._secrets = [s for s in (endpoint, parts.password, unquote(parts.password or ""))
                         if s and len(s) >= 3]
        # The URL httpx sees has no user-info: httpx logs every request's URL at INFO.
        auth = (httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
                if parts.username is not None or parts.password is not None else None)
        self._endpoint = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self._timeout = timeout
        self._http = httpx.Client(timeout=timeout, transport=transport, auth=auth)

    def __enter__(self) -> GraphStoreClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.close()

    def put(self, graph: str | None, body: Path) -> int:
        """Replace `graph` (None: the default graph) by the N-Triples file `body`; the status."""
        size = body.stat().st_size
        return self._send("PUT", graph, content=_chunks(body),
                          headers={"Content-Type": _NTRIPLES, "Content-Length": str(size)})

    def delete(self, graph: str) -> int:
        """Delete `graph`; its status (404: there was no such graph, which is fine)."""
        return self._send("DELETE", graph)

    def _send(
        self, method: str, graph: str | None, *, content: Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> int:
        name = f"graph <{graph}>" if graph is not None else "the default graph"
        params = {"graph": graph} if graph is not None else {"default": ""}
        try:
            response = self._http.request(method, self._endpoint, params=params,
                                          content=content, headers=headers)
        except httpx.TimeoutException as err:
            raise PushError(f"{method} {name}: no answer from {self.where} within "
                            f"{self._timeout:g} s", endpoint=self.where, graph=graph,
                            retryable=True) from err
        except httpx.TransportError as err:  # refused, DNS, reset: nothing reached the store
            raise PushError(f"cannot reach the graph store endpoint {self.where}: "
                            f"{self._scrub(str(err)) or type(err).__name__}",
                            endpoint=self.where, graph=graph, retryable=True) from err
        status = response.status_code
        if method == "DELETE" and status == 404:
            return status
        if status >= 400:
            hint = " (check the credentials in the endpoint URL)" if status in (401, 403) else ""
            detail = self._scrub(response.text.strip()[:300])
            raise PushError(f"{method} {name} at {self.where}: HTTP {status}{hint}"
                            + (f": {detail}" if detail else ""),
                            endpoint=self.where, graph=graph, status=status,
                            retryable=status in (408, 429) or status >= 500)
        return status

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _ours(base: str) -> list[str]:
    names = [*(k.value for k in SourceKind), CANDIDATES, RETRACTED]
    return [str(graph_iri(base, n)) for n in names]


def push_run(
    out_dir: Path,
    *,
    endpoint: str,
    base: str,
    timeout: float,
    fact_decisions: Iterable[Decision] = DEFAULT_FACT_DECISIONS,
    default_graph: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> PushReport:
    """Push the run in `out_dir` (see the module docstring) to the Graph Store endpoint.

    `base` and `fact_decisions` are the run's `export.base_iri` and `export.assert_decisions`
    (the latter decides which replayed retracted statements name a fact graph).
    `default_graph` puts graph.nq's default graph into that named graph instead of the
    endpoint's default graph (for an endpoint several datasets share).

    Raises:
        InputError: a bad output folder (see `run_dataset`).
        ConfigError: a bad endpoint URL or `default_graph`.
        PushError: the endpoint is unreachable or answered an error status.
    """
    start = time.perf_counter()
    check_endpoint(endpoint)
    ours = _ours(base)
    if default_graph is not None:
        try:
            ox.NamedNode(default_graph)
        except ValueError as err:
            raise ConfigError(f"push.default_graph: not an IRI: {default_graph!r}") from err
        if default_graph in ours:
            raise ConfigError(f"push.default_graph: <{default_graph}> is one of the run's "
                              "named graphs")
    dataset = run_dataset(out_dir, base=base, fact_decisions=fact_decisions)
    present = sorted(g.value for g in dataset.named_graphs() if isinstance(g, ox.NamedNode))
    targets: Sequence[tuple[str | None, ox.NamedNode | ox.DefaultGraph]] = [
        *((g, ox.NamedNode(g)) for g in present), (default_graph, _DEFAULT)]
    done: list[GraphPush] = []
    with GraphStoreClient(endpoint, timeout=timeout, transport=transport) as client, \
            tempfile.TemporaryDirectory(prefix="kgenrich-push-") as tmp:
        body = Path(tmp) / "graph.nt"
        for target, graph in targets:
            dataset.dump(body, ox.RdfFormat.N_TRIPLES, from_graph=graph)
            triples = sum(1 for _ in dataset.quads_for_pattern(None, None, None, graph))
            status = client.put(target, body)
            shown = target if target is not None else "default"
            done.append(GraphPush(graph=shown, triples=triples,
                                  action="created" if status == 201 else "replaced",
                                  status=status))
            logger.info("pushed %s to %s: %d triples (HTTP %d)", shown, client.where,
                        triples, status)
        for gone in (g for g in ours if g not in present):
            status = client.delete(gone)
            done.append(GraphPush(graph=gone, triples=0,
                                  action="absent" if status == 404 else "deleted",
                                  status=status))
    report = PushReport(endpoint=redact_url(endpoint), graphs=tuple(done),
                        seconds=time.perf_counter() - start)
    logger.info("pushed %d graph(s) to %s in %.1f s", len(present) + 1, report.endpoint,
                report.seconds)
    return report
