"""What a SPARQL text asks, read before Oxigraph runs it: its form (a query or an update) and
whether it calls another endpoint (`SERVICE`), so a read-only query never writes and never makes
an outbound request unless the user allows it.

Only keywords count: strings, IRIs, comments, variables (`?service`) and prefixed names
(`ex:Service`) are masked first.
"""

from __future__ import annotations

import re
from typing import Literal

from kgenrich.errors import InputError

QueryForm = Literal["SELECT", "ASK", "CONSTRUCT", "DESCRIBE", "UPDATE"]

_UPDATE_KEYWORDS = ("INSERT", "DELETE", "LOAD", "CLEAR", "CREATE", "DROP", "COPY", "MOVE", "ADD",
                    "WITH")
_QUERY_KEYWORDS = ("SELECT", "ASK", "CONSTRUCT", "DESCRIBE")
# Strings (long forms first), IRI references, comments: what may hold keyword-like text.
_MASKED = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"""'
    r"|'''(?:[^'\\]|\\.|'(?!''))*'''"
    r'|"(?:[^"\\\n]|\\.)*"'
    r"|'(?:[^'\\\n]|\\.)*'"
    r'|<[^<>"{}|^`\\\s]*>'
    r"|#[^\n]*",
    re.DOTALL,
)


def _keyword(words: tuple[str, ...]) -> re.Pattern[str]:
    # not part of a variable (?x $x), a prefixed name (ex:x, x:y) or a longer word
    return re.compile(rf"(?<![\w:?$-])({'|'.join(words)})(?![\w:-])", re.IGNORECASE)


_FORM = _keyword(_QUERY_KEYWORDS + _UPDATE_KEYWORDS)
_SERVICE = _keyword(("SERVICE",))


def masked(sparql: str) -> str:
    """`sparql` with strings, IRIs and comments blanked out (same length, same lines)."""
    return _MASKED.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), sparql)


def query_form(sparql: str) -> QueryForm | None:
    """SELECT, ASK, CONSTRUCT or DESCRIBE for a query, UPDATE for an update request, None when
    no form keyword appears (the parser then says what is wrong)."""
    match = _FORM.search(masked(sparql))
    if match is None:
        return None
    word = match.group(1).upper()
    return "UPDATE" if word in _UPDATE_KEYWORDS else word  # type: ignore[return-value]


def uses_service(sparql: str) -> bool:
    """Whether the text holds a `SERVICE` clause (a federated call to another endpoint)."""
    return _SERVICE.search(masked(sparql)) is not None


def check_read_only_query(sparql: str, *, allow_service: bool) -> None:
    """Refuse what a read-only, offline query must not do.

    Raises:
        InputError: an update request, or a SERVICE clause without `allow_service`.
    """
    if query_form(sparql) == "UPDATE":
        raise InputError("read-only: UPDATE not allowed (INSERT, DELETE, LOAD, CLEAR, CREATE, "
                         "DROP, COPY, MOVE, ADD); only SELECT, ASK, CONSTRUCT and DESCRIBE run",
                         field="sparql")
    if not allow_service and uses_service(sparql):
        raise InputError("SERVICE is off: it would send a request to another endpoint from "
                         "this machine; pass --allow-service to allow it", field="sparql")
