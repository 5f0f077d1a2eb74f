"""Errors raised by the recommender package; each carries the fields a user needs to fix input.
They derive from the project's hierarchy, so the CLI reports them like every other bad input."""

from __future__ import annotations

from kgenrich.errors import InputError, KgenrichError


class RecsysError(KgenrichError):
    """Root of the errors raised by :mod:`recsys`."""


class DataFormatError(RecsysError, InputError, ValueError):
    """A data file does not hold what its format promises.

    ``line`` is 1-based and counts every physical line (header and blank lines included); for
    ``.npy`` files it is the 1-based row number.  ``field`` names the column that is wrong (or
    ``"row"`` when the row as a whole is malformed).
    """

    def __init__(
        self,
        *,
        file: str,
        line: int | None,
        field: str,
        expected: str,
        got: str,
    ) -> None:
        where = f"{file}, line {line}" if line is not None else file
        Exception.__init__(self, f"{where}, field {field!r}: expected {expected}, got {got}")
        self.file = file
        self.line = line
        self.field = field
        self.expected = expected
        self.got = got

    @classmethod
    def from_input(cls, err: InputError) -> DataFormatError:
        """A `kg.io` reader's `InputError` as this package's error: same fields, same message."""
        out = cls(
            file=err.file or "", line=err.line, field=err.field or "row",
            expected=err.expected or "", got=err.got or "",
        )
        out.args = err.args
        return out
