"""Test support shipped with the package (like `prefect.testing`): servers and data on
127.0.0.1 that tests and benchmarks drive kgenrich against. Not used by kgenrich itself."""

from __future__ import annotations

from kgenrich.testing.completion import per_relation
from kgenrich.testing.films import (
    FaultChooser,
    FilmServer,
    catalog_rows,
    deterministic_reply,
    film_server,
    write_catalog,
)
from kgenrich.testing.scripted_server import (
    TEST_KEY,
    ClientFactory,
    Fault,
    Recorded,
    ScriptedServer,
    completion,
    default_reply,
    html_page,
    http_error,
    malformed_json,
    rate_limited,
    slow,
)

__all__ = [
    "TEST_KEY",
    "per_relation",
    "ClientFactory",
    "Fault",
    "FaultChooser",
    "FilmServer",
    "Recorded",
    "ScriptedServer",
    "catalog_rows",
    "completion",
    "default_reply",
    "deterministic_reply",
    "film_server",
    "html_page",
    "http_error",
    "malformed_json",
    "rate_limited",
    "slow",
    "write_catalog",
]
