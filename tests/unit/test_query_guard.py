"""`kgenrich query` only reads, offline: SERVICE is refused unless allowed (checked against a real
Oxigraph store and a real SPARQL endpoint on 127.0.0.1 that counts what reaches it), UPDATE is
refused with a read-only message, and a missing or empty store folder is an error, never a new
store."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kgenrich import cli
from kgenrich.cli_query import query_command
from kgenrich.errors import InputError
from kgenrich.kg.records import Entity
from kgenrich.kg.sparql_guard import query_form, uses_service
from kgenrich.kg.store import GraphStore

BASE = "http://example.org/kg/"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "kg"
    with GraphStore.open(path, base=BASE) as store:
        store.load([Entity(id="e1", label="Heat", type="Movie")], [])
    return path


class _Endpoint:
    """A SPARQL endpoint on 127.0.0.1 that answers every query with one empty solution."""

    def __init__(self) -> None:
        self.hits = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                endpoint.hits += 1
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                body = json.dumps({"head": {"vars": ["x"]},
                                   "results": {"bindings": [{"x": {"type": "literal",
                                                                    "value": "remote"}}]}})
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/sparql-results+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/sparql"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def endpoint() -> Iterator[_Endpoint]:
    ep = _Endpoint()
    yield ep
    ep.httpd.shutdown()
    ep.httpd.server_close()


def test_service_is_refused_and_nothing_leaves_the_machine(
    db: Path, endpoint: _Endpoint
) -> None:
    sparql = f"SELECT ?x WHERE {{ SERVICE <{endpoint.url}> {{ ?s ?p ?x }} }}"
    with pytest.raises(InputError, match="SERVICE is off.*--allow-service"):
        query_command(db, sparql, "json")
    with GraphStore.open_existing(db) as store, pytest.raises(InputError, match="SERVICE"):
        store.query(sparql.replace("SERVICE", "service silent"))
    assert endpoint.hits == 0


def test_allow_service_opts_in(db: Path, endpoint: _Endpoint) -> None:
    """The guard is what stops the request: allowed, the store does call the endpoint."""
    sparql = f"SELECT ?x WHERE {{ SERVICE <{endpoint.url}> {{ ?s ?p ?x }} }}"
    with GraphStore.open_existing(db) as store:
        rows = store.query(sparql, allow_service=True)
    assert endpoint.hits >= 1 and rows == [{"x": "remote"}]


@pytest.mark.parametrize("update", [
    'INSERT DATA { <http://x/a> <http://x/p> "1" }',
    "PREFIX ex: <http://x/>\n# a comment\nDELETE WHERE { ?s ?p ?o }",
    "LOAD <http://127.0.0.1:9/data.ttl>",
    "clear all",
    "WITH <http://x/g> DELETE { ?s ?p ?o } WHERE { ?s ?p ?o }",
])
def test_update_is_refused_as_read_only(db: Path, update: str) -> None:
    with pytest.raises(InputError, match="read-only: UPDATE not allowed"):
        query_command(db, update, "json")
    with GraphStore.open_existing(db) as store:
        assert store.query("ASK { ?s ?p ?o }") is True  # nothing was changed


def test_missing_or_empty_store_is_an_error_and_nothing_is_created(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no graph store here"):
        query_command(tmp_path / "nope", "ASK { ?s ?p ?o }", "json")
    assert not (tmp_path / "nope").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty directory without a graph store"):
        query_command(tmp_path / "empty", "ASK { ?s ?p ?o }", "json")
    assert list((tmp_path / "empty").iterdir()) == []


def test_cli_query_update_exits_2_with_the_read_only_message(db: Path) -> None:
    result = CliRunner().invoke(cli.app, ["query", str(db), "DROP ALL"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "read-only: UPDATE not allowed" in text and "CONSTRUCT" not in text.split(";")[0]


@pytest.mark.parametrize(("sparql", "form", "service"), [
    ("SELECT ?service WHERE { ?service ?p ?o }", "SELECT", False),
    ('SELECT * WHERE { ?s ex:service "SERVICE <http://x>" } # SERVICE <http://y>', "SELECT",
     False),
    ("PREFIX service: <http://x/service/> ASK { service:a ?p <http://x/SERVICE> }", "ASK", False),
    ("select * { SERVICE SILENT <http://x/sparql> { ?s ?p ?o } }", "SELECT", True),
    ("SELECT * { SERVICE ?endpoint { ?s ?p ?o } }", "SELECT", True),
    ("PREFIX insert: <http://x/> CONSTRUCT { ?s insert:a ?o } WHERE { ?s ?p ?o }",
     "CONSTRUCT", False),
    ("DESCRIBE <http://x/a>", "DESCRIBE", False),
    ('INSERT DATA { <http://x/a> <http://x/p> """SELECT""" }', "UPDATE", False),
    ("this is not sparql", None, False),
])
def test_guard_reads_keywords_not_names_strings_or_iris(
    sparql: str, form: str | None, service: bool
) -> None:
    assert query_form(sparql) == form
    assert uses_service(sparql) is service
