"""kg/push.py without a server: what a push sends for a run's output folder, how retractions are
replayed, and the errors (bad folder, unreachable endpoint, HTTP status) with no credential in
any message or log. The real round trip is tests/integration/test_push_oxigraph.py."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyoxigraph as ox
import pytest

from kgenrich.errors import ConfigError, InputError, PushError
from kgenrich.kg.export.rdf import write_nquads
from kgenrich.kg.namespace import graph_iri
from kgenrich.kg.push import RetractedItem, push_run, read_retractions, retracted_quads
from kgenrich.kg.records import Decision, Entity, Provenance, SourceKind, Triple
from kgenrich.kg.store import RETRACTED, GraphStore
from kgenrich.runs.bookkeeping import RetractionRow
from kgenrich.settings import SettingsError, load_settings

BASE = "https://kgenrich.dev/id/"
ENTITIES = [Entity(id="item/1", label="Alien", type="Movie"),
            Entity(id="genre/horror", label="Horror", type="Genre")]
SEED = Triple(head="item/1", relation="has_genre", tail="genre/horror",
              provenance=Provenance(source=SourceKind.SEED, decision=Decision.TRUSTED))
COMPLETED = Triple(head="item/1", relation="directed_by", tail="person/ridley-scott",
                   provenance=Provenance(source=SourceKind.COMPLETED, item_id="1", model="m",
                                         prompt_version="v1", decision=Decision.ACCEPTED,
                                         scores={"confidence": 0.9, "nli": 0.4}))
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _out(tmp_path: Path, triples: list[Triple] | None = None) -> Path:
    out = tmp_path / "out"
    out.mkdir(parents=True)
    write_nquads(out / "graph.nq", entities=ENTITIES, triples=triples or [SEED], base=BASE)
    return out


class _Recorder:
    """A Graph Store endpoint in memory: records each request, answers `status(request)`."""

    def __init__(self, status: int = 204, fail: str | None = None, body: str = "") -> None:
        self.requests: list[httpx.Request] = []
        self.status, self.fail, self.body = status, fail, body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if self.fail is not None and request.url.params.get("graph", "").endswith(self.fail):
            return httpx.Response(500, text=self.body)
        if request.method == "DELETE":
            return httpx.Response(404)
        return httpx.Response(self.status)


def test_push_puts_every_graph_and_default_and_deletes_ours_the_output_lacks(
    tmp_path: Path,
) -> None:
    endpoint = _Recorder(status=201)
    report = push_run(_out(tmp_path), endpoint="http://127.0.0.1:9/store", base=BASE,
                      timeout=5, transport=httpx.MockTransport(endpoint))
    sent = [(r.method, dict(r.url.params)) for r in endpoint.requests]
    assert sent[0] == ("PUT", {"graph": BASE + "graph/seed"})
    assert sent[1] == ("PUT", {"default": ""})
    deleted = {p["graph"] for m, p in sent if m == "DELETE"}
    assert deleted == {BASE + f"graph/{g}" for g in
                       ("catalog", "extracted", "completed", "candidates", "retracted")}
    put = endpoint.requests[0]
    assert put.headers["content-type"] == "application/n-triples"
    assert put.content.count(b"\n") == 1  # the seed fact, as N-Triples
    assert report.counts()[BASE + "graph/seed"] == 1
    assert {g.action for g in report.graphs} == {"created", "absent"}


def test_default_graph_can_go_to_a_named_graph(tmp_path: Path) -> None:
    endpoint = _Recorder()
    push_run(_out(tmp_path), endpoint="http://127.0.0.1:9/store", base=BASE, timeout=5,
             default_graph="https://example.org/runs/1", transport=httpx.MockTransport(endpoint))
    assert {"graph": "https://example.org/runs/1"} in [dict(r.url.params)
                                                       for r in endpoint.requests]
    with pytest.raises(ConfigError, match="one of the run's named graphs"):
        push_run(_out(tmp_path / "b"), endpoint="http://127.0.0.1:9/store", base=BASE,
                 timeout=5, default_graph=BASE + "graph/seed",
                 transport=httpx.MockTransport(endpoint))


def test_bad_output_folder_is_an_input_error_naming_the_file(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/store"
    with pytest.raises(InputError, match="not a run's output folder") as err:
        push_run(tmp_path / "missing", endpoint=url, base=BASE, timeout=5)
    assert err.value.file == str(tmp_path / "missing")
    with pytest.raises(InputError, match="no graph.nq"):
        push_run(tmp_path, endpoint=url, base=BASE, timeout=5)
    (tmp_path / "graph.nq").write_text("<a> <b> not rdf\n")
    with pytest.raises(InputError, match="cannot read N-Quads"):
        push_run(tmp_path, endpoint=url, base=BASE, timeout=5)


def test_graph_under_another_base_names_the_setting(tmp_path: Path) -> None:
    out = _out(tmp_path)
    with pytest.raises(InputError, match=r"export.base_iri=https://kgenrich.dev/id/"):
        push_run(out, endpoint="http://127.0.0.1:9/store", base="https://other.org/", timeout=5)


def test_bad_retraction_row_names_the_line(tmp_path: Path) -> None:
    out = _out(tmp_path)
    (out / "retractions.jsonl").write_text('\n{"run": "r"}\n')
    with pytest.raises(InputError, match="bad retraction row") as err:
        push_run(out, endpoint="http://127.0.0.1:9/store", base=BASE, timeout=5)
    assert err.value.line == 2


def test_unreachable_endpoint_is_retryable_and_never_shows_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PushError, match="cannot reach") as err:
        push_run(_out(tmp_path), endpoint=f"http://bob:hunter22@127.0.0.1:{port}/store",
                 base=BASE, timeout=5)
    assert err.value.retryable and err.value.status is None
    assert "hunter22" not in str(err.value) and "hunter22" not in caplog.text
    assert err.value.endpoint == f"http://***@127.0.0.1:{port}/store"


def test_error_status_names_graph_and_status_and_scrubs_echoed_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "https://bob:hunter22@store.example/ds/data"
    endpoint = _Recorder(fail="graph/seed", body=f"cannot write to {url}")
    with pytest.raises(PushError) as err:
        push_run(_out(tmp_path), endpoint=url, base=BASE, timeout=5,
                 transport=httpx.MockTransport(endpoint))
    assert err.value.status == 500 and err.value.retryable
    assert err.value.graph == BASE + "graph/seed"
    assert f"PUT graph <{BASE}graph/seed>" in str(err.value) and "HTTP 500" in str(err.value)
    assert "hunter22" not in str(err.value) and "hunter22" not in caplog.text
    # the credentials went out as HTTP Basic auth
    assert endpoint.requests[0].headers["authorization"].startswith("Basic ")


def test_endpoint_must_be_http_and_the_message_masks_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="push.endpoint") as err:
        push_run(_out(tmp_path), endpoint="ftp://bob:hunter22@host/store", base=BASE, timeout=5)
    assert "hunter22" not in str(err.value)


def _row(run: str = "r2") -> RetractedItem:
    return RetractedItem(run=run, at=AT, item_id="1", reason="removed from the catalog",
                         triples=(COMPLETED,))


def _without_events(quads: list[ox.Quad]) -> set[str]:
    """The quads as N-Quads lines with each event IRI replaced (they differ by design)."""
    events = {q.subject.value for q in quads if q.object == ox.NamedNode(
        "http://www.w3.org/ns/prov#Invalidation")}
    out = set()
    for q in quads:
        line = str(q)
        for ev in events:
            line = line.replace(ev, "EVENT")
        out.add(line)
    return out


def test_replayed_retraction_is_stable_and_matches_the_store(tmp_path: Path) -> None:
    first = retracted_quads([_row()], base=BASE)
    assert set(map(str, first)) == set(map(str, retracted_quads([_row()], base=BASE)))
    assert {q.graph_name for q in first} == {ox.NamedNode(str(graph_iri(BASE, RETRACTED)))}
    # the same graph as a store that loaded the triple and retracted the item
    with GraphStore.open(None, base=BASE) as store:
        store.load(ENTITIES, [SEED, COMPLETED])
        store.retract(["1"], reason="removed from the catalog", run="r2", at=AT)
        assert _without_events(store.graph_quads(RETRACTED)) == _without_events(first)
    assert _without_events(first) != _without_events(retracted_quads([_row("r3")], base=BASE))


def test_read_retractions_reads_what_the_run_writes(tmp_path: Path) -> None:
    row = RetractionRow(run="r2", at=AT.isoformat(), item_id="1", reason="gone",
                        triples=[COMPLETED.model_dump(mode="json")], records={"x": {}})
    path = tmp_path / "retractions.jsonl"
    path.write_text(row.model_dump_json() + "\n")
    assert read_retractions(path) == [RetractedItem(run="r2", at=AT, item_id="1",
                                                    reason="gone", triples=(COMPLETED,))]


def test_push_endpoint_needs_the_nquads_export() -> None:
    with pytest.raises(SettingsError, match="export.formats has no 'nquads'") as err:
        load_settings(None, flags={"push.endpoint": "http://bob:hunter22@h/store"},
                      assignments=['export.formats=["turtle"]'])
    assert "hunter22" not in str(err.value)
    settings = load_settings(None, flags={"push.endpoint": "http://bob:hunter22@h/store"},
                             assignments=[])
    assert "hunter22" not in settings.model_dump_json()


def _cli_fails(monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    from typer.testing import CliRunner

    from kgenrich import cli

    def too_late(verbose: bool) -> None:
        raise AssertionError("settings must be validated before logging and Prefect load")

    monkeypatch.setattr(cli, "_setup_logging", too_late)
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 2, result.output
    return " ".join(result.output.split())


def test_run_push_without_nquads_stops_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = Path(__file__).parents[1] / "data" / "catalog.csv"
    out = _cli_fails(monkeypatch, "run", "--catalog", str(catalog),
                     "--push", "http://bob:hunter22@127.0.0.1:9/store",
                     "--set", 'export.formats=["turtle"]')
    assert "no 'nquads'" in out and "hunter22" not in out


def test_push_command_errors_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out = _out(tmp_path)
    assert "no endpoint" in _cli_fails(monkeypatch, "push", str(out))
    assert "not a run's output folder" in _cli_fails(
        monkeypatch, "push", str(tmp_path / "nope"), "--endpoint", "http://127.0.0.1:9/store")
