"""A real `oxigraph serve` (the PyPI package `oxigraph`, not the pyoxigraph binding) on
127.0.0.1 for tests that push graphs to a SPARQL store and query them back over HTTP."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


class Oxigraph:
    """A running server: its Graph Store Protocol endpoint and SPARQL queries over HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.store = f"{url}/store"

    def select(self, sparql: str) -> list[dict[str, str]]:
        """SELECT rows as {variable: value}; unbound variables are left out."""
        r = httpx.post(f"{self.url}/query", data={"query": sparql},
                       headers={"Accept": "application/sparql-results+json"}, timeout=30)
        r.raise_for_status()
        return [{k: v["value"] for k, v in b.items()} for b in r.json()["results"]["bindings"]]

    def counts(self) -> dict[str, int]:
        """Triples per named graph (non-empty ones), and in the default graph ("default")."""
        rows = self.select("SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } "
                           "GROUP BY ?g")
        out = {r["g"]: int(r["n"]) for r in rows}
        out["default"] = int(self.select("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }")[0]["n"])
        return out


def oxigraph_binary() -> str | None:
    """The `oxigraph` executable on PATH or beside this Python, if installed."""
    found = shutil.which("oxigraph") or str(Path(sys.executable).with_name("oxigraph"))
    return found if Path(found).is_file() else None


@contextmanager
def oxigraph_server(binary: str, location: Path, *, startup_s: float = 30) -> Iterator[Oxigraph]:
    """`oxigraph serve --location LOCATION` on a free 127.0.0.1 port until the block ends; its
    log is LOCATION.log."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Its output goes to a file, not a pipe nobody drains (a full pipe would stall the server).
    log = location.with_name(location.name + ".log")
    location.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "serve", "--location", str(location),
                                 "--bind", f"127.0.0.1:{port}"],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            try:
                httpx.get(f"{url}/query", params={"query": "ASK {}"}, timeout=2)
                break
            except httpx.TransportError as err:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"oxigraph serve did not start: "
                                       f"{log.read_text(errors='replace')[-2000:]}") from err
                time.sleep(0.1)
        yield Oxigraph(url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
