"""Body of `kgenrich query` (CLI layer): run one SPARQL query on a graph store and print the result.

SELECT rows, ASK's boolean or CONSTRUCT's triples go to stdout as a rich table, JSON or CSV.
Errors are `KgenrichError`s (bad query, an update, SERVICE without --allow-service, a missing or
empty store) for the CLI to report; a missing store is never created.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Literal

from rdflib import Graph
from rich.console import Console
from rich.table import Table

from kgenrich.errors import InputError
from kgenrich.kg.store import GraphStore

OutputFormat = Literal["table", "json", "csv"]


def read_sparql(sparql: str | Path) -> str:
    """The query text: a Path (or a string naming an existing file) is read, else used as is."""
    if isinstance(sparql, Path):
        path: Path | None = sparql
    elif "\n" not in sparql and "{" not in sparql and len(sparql) < 4096:
        path = Path(sparql) if Path(sparql).is_file() else None
    else:
        path = None
    if path is None:
        return str(sparql)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"cannot read the query file: {err}", file=str(path)) from err


def rows_of(result: list[dict[str, str]] | bool | Graph) -> tuple[list[str], list[dict[str, str]]]:
    """Column names and rows for any query result (ASK: one `boolean` cell; CONSTRUCT: N3 terms)."""
    if isinstance(result, bool):
        return ["boolean"], [{"boolean": "true" if result else "false"}]
    if isinstance(result, Graph):
        cols = ["subject", "predicate", "object"]
        rows = [
            {"subject": s.n3(), "predicate": p.n3(), "object": o.n3()} for s, p, o in sorted(result)
        ]
        return cols, rows
    cols = list(dict.fromkeys(k for row in result for k in row))
    return cols, result


def query_command(
    store: Path, sparql: str | Path, fmt: OutputFormat = "table", *, allow_service: bool = False
) -> int:
    """Run `sparql` (text or a .rq file) on the store at `store`, opened read-only; print it as
    `fmt`; return 0. Updates are refused; so is SERVICE unless `allow_service`."""
    if fmt not in ("table", "json", "csv"):
        raise InputError(
            "unknown output format", field="format", expected="table | json | csv", got=str(fmt)
        )
    text = read_sparql(sparql)
    with GraphStore.open_existing(store) as graph:
        result = graph.query(text, allow_service=allow_service)
    cols, rows = rows_of(result)
    if fmt == "json":
        payload: object = {"boolean": result} if isinstance(result, bool) else rows
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=cols, lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(rows)
    else:
        table = Table(*cols, caption=f"{len(rows)} row{'s' if len(rows) != 1 else ''}")
        for row in rows:
            table.add_row(*(row.get(c, "") for c in cols))
        Console(soft_wrap=False).print(table)
    return 0
