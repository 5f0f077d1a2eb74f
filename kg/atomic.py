"""Atomic file and directory writes: a reader sees the old output or the complete new one, never a
half-written file, and a failed write leaves nothing behind.

`atomic_write` writes a temp file in the target's directory, fsyncs it and `os.replace`s it in.
`atomic_dir` builds a multi-file export in `<path>.tmp-XXXX` and swaps the directory in whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, overload

from kgenrich.errors import ExportError

logger = logging.getLogger(__name__)

# Written into every directory atomic_dir creates. An existing non-empty directory without it is
# not ours (a run dir, the cwd, a home dir), so atomic_dir refuses to replace it.
EXPORT_MARKER = ".kgenrich-export"


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; some filesystems do not support it, which is harmless.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fresh_name(parent: Path, stem: str) -> Path:
    return parent / f"{stem}{secrets.token_hex(4)}"


@overload
def atomic_write(
    path: str | Path, *, mode: Literal["w"] = "w", encoding: str = "utf-8"
) -> contextlib.AbstractContextManager[IO[str]]: ...


@overload
def atomic_write(
    path: str | Path, *, mode: Literal["wb"], encoding: str = "utf-8"
) -> contextlib.AbstractContextManager[IO[bytes]]: ...


def atomic_write(
    path: str | Path, *, mode: Literal["w", "wb"] = "w", encoding: str = "utf-8"
) -> contextlib.AbstractContextManager[IO[Any]]:
    """Open `path` for writing so that it appears only once the `with` block completes.

    Text mode writes newlines untranslated (as `newline=""`). On any exception the temp file is
    removed, `path` is left as it was and the exception propagates.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    return _atomic_write(Path(path), mode=mode, encoding=encoding)


@contextlib.contextmanager
def _atomic_write(path: Path, *, mode: str, encoding: str) -> Iterator[IO[Any]]:
    parent = path.parent if str(path.parent) else Path(".")
    tmp = _fresh_name(parent, f".{path.name}.")
    tmp = tmp.with_name(tmp.name + ".tmp")
    # os.open with 0o666 lets the umask decide the final permissions, as a plain open() would;
    # tempfile.mkstemp would leave every export at 0600.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if mode == "wb":
            handle: IO[Any] = os.fdopen(fd, "wb")
        else:
            handle = os.fdopen(fd, "w", encoding=encoding, newline="")
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(parent)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(Path(dirpath) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temp directory next to `path`; on success it replaces `path` as a whole.

    Write every file of the export into the yielded directory. On an exception the temp directory
    is deleted and `path` is untouched. An existing `path` is replaced only if it is empty or was
    itself written by `atomic_dir` (it holds `EXPORT_MARKER`); otherwise `ExportError`, so a
    mistaken `path` (the cwd, a run directory) is never deleted.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.exists():
        _check_replaceable(target)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_name(parent, f"{target.name}.tmp-")
    tmp.mkdir()
    try:
        (tmp / EXPORT_MARKER).write_text("written by kgenrich; replaced whole on re-export\n")
        yield tmp
        _fsync_tree(tmp)
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(parent)


def _check_replaceable(target: Path) -> None:
    if not target.is_dir():
        raise ExportError(f"{target}: exists and is not a directory; refusing to replace it")
    if any(target.iterdir()) and not (target / EXPORT_MARKER).exists():
        raise ExportError(
            f"{target}: non-empty directory not written by a kgenrich export "
            f"(no {EXPORT_MARKER}); refusing to replace it"
        )


def _swap_in(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.replace(tmp, target)
        return
    _check_replaceable(target)  # again: it may have changed while the export was written
    old = _fresh_name(target.parent if str(target.parent) else Path("."), f"{target.name}.old-")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
