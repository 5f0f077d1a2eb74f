"""Shared checks for text read from user files: UTF-8 only, no NUL bytes, bounded field size.

Files are decoded with `surrogateescape`, so a bad byte survives as a lone surrogate inside the
field it belongs to; `check_field` then reports exactly that line and field.
"""

from __future__ import annotations

import re
from pathlib import Path

from kgenrich.errors import InputError

# The largest field accepted, in characters. Catalog text fields (plots, descriptions) are far
# shorter; anything bigger is almost always a broken quote swallowing the rest of the file.
MAX_FIELD_CHARS = 100_000

BAD_BYTE = re.compile("[\udc80-\udcff]")
_BOM = "\ufeff"


def read_text(path: Path) -> str:
    """The whole file as text, undecodable bytes kept as surrogates, a UTF-8 BOM dropped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise InputError("file not found", file=str(path)) from err
    except OSError as err:
        raise InputError(f"cannot read file: {err.strerror}", file=str(path)) from err
    text = raw.decode("utf-8", errors="surrogateescape")
    return text[1:] if text.startswith(_BOM) else text


def check_field(
    value: str, *, file: str, line: int | None, field: str, max_chars: int = MAX_FIELD_CHARS
) -> None:
    """Raise `InputError` if `value` holds undecodable bytes, a NUL byte or is over-long."""
    if BAD_BYTE.search(value):
        raise InputError(
            "undecodable bytes", file=file, line=line, field=field, expected="UTF-8 text"
        )
    if "\x00" in value:
        raise InputError("NUL byte in field", file=file, line=line, field=field)
    if len(value) > max_chars:
        raise InputError(
            "field too long",
            file=file,
            line=line,
            field=field,
            expected=f"at most {max_chars} characters",
            got=f"{len(value)} characters",
        )


def split_lines(text: str) -> list[str]:
    """Physical lines split on LF only (CRLF's CR dropped): str.splitlines would also split on
    U+2028 and friends inside a field and shift every later line number."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
