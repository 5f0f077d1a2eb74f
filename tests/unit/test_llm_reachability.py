"""The LLM reachability preflight (pipeline/llm/reachability.py) against real HTTP servers on
127.0.0.1: a live endpoint passes, a refused key and a dead port are one line naming the
setting, and the API key never appears in that line."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kgenrich.cli_preflight import preflight_inputs
from kgenrich.data import ontology
from kgenrich.kg.io.catalog import CatalogMapping
from kgenrich.pipeline.llm import reachability
from kgenrich.runs.preflight import PreflightError
from kgenrich.settings import LLMSettings, Settings
from kgenrich.testing.scripted_server import ScriptedServer

SECRET = "sk-test-do-not-print-0123456789"
DATA = Path(__file__).parents[1] / "data"


@pytest.fixture
def refusing() -> Iterator[str]:
    """An endpoint that answers 401 to everything, as a gateway does for a wrong key."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(401)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def _openai(base_url: str | None) -> LLMSettings:
    return LLMSettings(backend="openai", base_url=base_url, api_key=SECRET)  # type: ignore[arg-type]


def test_a_live_endpoint_passes() -> None:
    with ScriptedServer() as server:
        assert reachability.unreachable(_openai(server.base_url)) is None
        assert not server.chat_count  # no tokens spent on the check


def test_a_refused_key_names_the_setting_and_hides_the_key(refusing: str) -> None:
    why = reachability.unreachable(_openai(refusing))
    assert why is not None and why.startswith("llm.api_key: ") and "HTTP 401" in why
    assert SECRET not in why


def test_a_dead_endpoint_is_one_line_naming_base_url() -> None:
    url = f"http://user:{SECRET}@127.0.0.1:{_dead_port()}/v1"
    why = reachability.unreachable(_openai(url), timeout_s=2.0)
    assert why is not None and why.startswith("llm.base_url: ") and "not reachable" in why
    assert "\n" not in why and SECRET not in why


def test_openai_without_base_url_and_fake_backend() -> None:
    assert (reachability.unreachable(_openai(None)) or "").startswith("llm.base_url: ")
    assert reachability.unreachable(LLMSettings(backend="fake")) is None


def test_embedded_without_llama_cpp_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reachability.importlib.util, "find_spec", lambda name: None)
    why = reachability.unreachable(LLMSettings(backend="embedded"))
    assert why is not None and "llama-cpp-python" in why and "scripts/setup.sh" in why


def _preflight(settings: Settings) -> None:
    preflight_inputs(
        catalog=DATA / "catalog.csv",
        mapping=CatalogMapping(text=("description",), attributes={
            "director": "directed_by", "genres": "has_genre"}),
        ontology=ontology("movies"), seed=DATA / "seed.tsv", seed_format="auto",
        seed_link=None, seed_on_error="raise", settings=settings).raise_for_problems()


def test_run_preflight_stops_on_a_dead_endpoint_only_when_a_stage_asks_the_llm() -> None:
    dead = Settings(llm=_openai(f"http://127.0.0.1:{_dead_port()}/v1"))
    with pytest.raises(PreflightError, match=r"llm\.base_url: .*not reachable"):
        _preflight(dead)
    no_llm = dead.model_copy(update={
        "discover": dead.discover.model_copy(update={"use_llm": False}),
        "extract": dead.extract.model_copy(update={"enabled": False}),
        "complete": dead.complete.model_copy(update={"enabled": False})})
    _preflight(no_llm)  # spaCy and the verifier only: the endpoint does not matter
