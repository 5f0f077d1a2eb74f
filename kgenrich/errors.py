"""The project's exception hierarchy: every error carries the fields a user needs to fix it."""

from __future__ import annotations

import errno as _errno


class KgenrichError(Exception):
    """Base class for every error kgenrich raises on purpose. The CLI prints it on one line and
    exits with `exit_code`."""

    exit_code = 2  # a mistake in the inputs, the settings or the environment


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


class PathError(KgenrichError):
    """The environment refused a path: it is a file where a folder must be, it is read-only, the
    disk is full, or what it holds is corrupt. `path` names it; `reason` says what to fix."""

    def __init__(self, message: str, *, path: str, reason: str | None = None) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {message}" + (f" ({reason})" if reason else ""))

    @classmethod
    def from_os_error(cls, err: OSError, *, path: str | None = None,
                      doing: str = "cannot write") -> PathError:
        """One line for an OSError: what was being done, the path, and the cause in words."""
        where = path or (str(err.filename) if err.filename is not None else "?")
        return cls(f"{doing}: {_OS_REASONS.get(err.errno or 0, err.strerror or str(err))}",
                   path=where)


class OutputLocked(PathError):
    """Another live `kgenrich run` holds the output folder's lock. Names the holder."""

    def __init__(self, *, path: str, holder: str) -> None:
        self.holder = holder
        super().__init__(f"output folder is in use by another run ({holder}); wait for it to "
                         "finish or choose another --out", path=path)


class RunIncomplete(KgenrichError):
    """The run finished but did not do its work: no LLM answer came back at all, or more than
    the allowed share of items failed. `summary` is the endpoint's error in one line."""

    exit_code = 3  # the run ran but did not do its work: not a mistake to fix in the inputs

    def __init__(self, message: str, *, summary: str | None = None) -> None:
        self.summary = summary
        super().__init__(message + (f": {summary}" if summary else ""))


# errno -> what it means for the user, for PathError.from_os_error.
_OS_REASONS = {
    _errno.ENOSPC: "no space left on the device (disk full)",
    _errno.EDQUOT: "disk quota exceeded",
    _errno.EROFS: "read-only file system",
    _errno.EACCES: "permission denied",
    _errno.EPERM: "permission denied",
    _errno.ENOTDIR: "a file is in the way where a folder must be",
    _errno.EEXIST: "a file is in the way where a folder must be",
    _errno.EISDIR: "is a folder, not a file",
    _errno.ENOENT: "no such file or folder",
}
