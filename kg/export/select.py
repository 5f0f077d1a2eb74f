"""Choose which triples an export holds, by verification decision and by source."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from kgenrich.errors import ConfigError
from kgenrich.kg.records import Decision, SourceKind, Triple

E = TypeVar("E", Decision, SourceKind)

#: The decisions an export asserts as facts unless told otherwise (RDF plain triples, GraphML
#: edges); the default of settings `export.assert_decisions` (a test checks they agree). Other
#: triples are candidates: kept as reified statements and in the JSONL dump, never as facts.
DEFAULT_FACT_DECISIONS: frozenset[Decision] = frozenset({Decision.TRUSTED, Decision.ACCEPTED})


def select(
    triples: Iterable[Triple],
    *,
    include_decisions: Iterable[Decision | str] | None = None,
    include_sources: Iterable[SourceKind | str] | None = None,
) -> list[Triple]:
    """The triples whose decision and source are both included (None includes every value).

    E.g. `include_decisions=("trusted", "accepted")` drops rejected and unreviewed triples;
    `include_sources=("seed", "catalog")` exports without any LLM-added triple. Unknown names
    raise `ConfigError`.
    """
    decisions = _parse(include_decisions, Decision, what="decision")
    sources = _parse(include_sources, SourceKind, what="source")
    return [
        t
        for t in triples
        if (decisions is None or t.provenance.decision in decisions)
        and (sources is None or t.provenance.source in sources)
    ]


def _parse(values: Iterable[E | str] | None, kind: type[E], *, what: str) -> frozenset[E] | None:
    if values is None:
        return None
    out: set[E] = set()
    for value in values:
        try:
            out.add(kind(value))
        except ValueError as err:
            allowed = ", ".join(m.value for m in kind)
            raise ConfigError(f"unknown {what} {value!r}; expected one of {allowed}") from err
    return frozenset(out)
