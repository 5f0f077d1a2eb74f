"""Body of `kgenrich push` (CLI layer): send a run's graphs to a Graph Store Protocol endpoint
(`kgenrich.kg.push`) and print what each request did. Errors are `KgenrichError`s."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from kgenrich.errors import ConfigError
from kgenrich.kg.push import PushReport, push_run
from kgenrich.kg.records import Decision
from kgenrich.settings import Settings


def push_command(out_dir: Path, settings: Settings) -> PushReport:
    """Push `out_dir` to `settings.push.endpoint`, print a table of the graphs; the report."""
    if settings.push.endpoint is None:
        raise ConfigError("no endpoint: pass --endpoint URL (or set push.endpoint, e.g. "
                          "KGENRICH_PUSH__ENDPOINT)")
    report = push_run(out_dir, endpoint=settings.push.endpoint.get_secret_value(),
                      base=settings.export.base_iri, timeout=settings.push.timeout_s,
                      fact_decisions=[Decision(d) for d in settings.export.assert_decisions],
                      default_graph=settings.push.default_graph)
    table = Table("graph", "triples", "action", "HTTP",
                  caption=f"{report.endpoint} in {report.seconds:.1f} s")
    for g in report.graphs:
        table.add_row(g.graph, str(g.triples), g.action, str(g.status))
    Console(soft_wrap=False).print(table)
    return report
