"""The project's exception hierarchy: every error carries the fields a user needs to fix it."""

from __future__ import annotations


class KgenrichError(Exception):
    """Base class for every error kgenrich raises on purpose."""


class InputError(KgenrichError):
    """A bad input file, row or field. Names the file, the 1-based line and the field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        expected: str | None = None,
        got: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.expected = expected
        self.got = got
        where = ":".join(str(p) for p in (file, line) if p is not None)
        parts = [where] if where else []
        if field is not None:
            parts.append(f"field {field!r}")
        parts.append(message)
        if expected is not None:
            parts.append(f"expected {expected}")
        if got is not None:
            shown = got if len(got) <= 80 else got[:77] + "..."
            parts.append(f"got {shown!r}")
        head = ": ".join(parts[:2])
        super().__init__(head + ("; " + "; ".join(parts[2:]) if len(parts) > 2 else ""))


class ConfigError(KgenrichError):
    """Settings that cannot work together (unknown backend, missing model file, ...)."""


class LLMError(KgenrichError):
    """The LLM endpoint failed after retries (network, HTTP status, timeout)."""


class LLMResponseError(LLMError):
    """The LLM answered, but the answer did not match the requested schema, even after repair."""

    def __init__(self, message: str, *, raw: str = "", model: str = "") -> None:
        self.raw = raw
        self.model = model
        super().__init__(message)


class BudgetExhausted(LLMError):
    """The run's LLM budget (calls or tokens) is spent; the run stops cleanly."""


class ExportError(KgenrichError):
    """An export could not be written. `path` names the file or folder, when one is known."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class PushError(ExportError):
    """Pushing graphs to a triple store failed. Names the endpoint (credentials masked), the
    graph and the HTTP status; `retryable` says whether the same push may succeed later."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        graph: str | None = None,
        status: int | None = None,
        retryable: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.graph = graph
        self.status = status
        self.retryable = retryable
        super().__init__(message)
