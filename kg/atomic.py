"""Atomic file and directory writes: a reader sees the old output or the complete new one, never a
half-written file, and a failed write leaves nothing behind.

`atomic_write` writes a temp file in the target's directory, fsyncs it and `os.replace`s it in.
`atomic_dir` builds a multi-file export in `<path>.tmp-XXXX` and swaps the directory in whole.
`staged_exports` builds a set of exports in a staging folder inside the output folder and swaps
them in together, journalled, so a kill mid-swap is completed by the next `recover_staged`.
"""

from __future__ import annotations

import contextlib
import json
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


#: Staging folders `staged_exports` creates inside an output folder (hidden; removed on success).
STAGING_PREFIX = ".kgenrich-staging-"
_JOURNAL = "journal.json"  # written once the new exports are complete: from then on, roll forward


@contextlib.contextmanager
def staged_exports(folder: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder inside `folder`; on success what was written there
    replaces its namesakes in `folder`, together.

    A file, or a directory holding `EXPORT_MARKER` (an `atomic_dir`), replaces its namesake
    whole; other directories are merged entry by entry, and entries of `folder` that the
    staging folder does not hold are left alone (a state store, a review file). On an exception
    inside the block the staging folder is removed and `folder` is as it was; a kill leaves only
    the staging folder, which `recover_staged` removes (or, once its journal is written,
    completes). OSErrors of the swap itself become `ExportError` naming the path.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    recover_staged(out)
    staging = _fresh_name(out, STAGING_PREFIX)
    (staging / "new").mkdir(parents=True)
    try:
        yield staging / "new"
        units = _units(staging / "new", Path())
        for rel in units:
            _check_target(staging / "new" / rel, out / rel)
        _fsync_tree(staging / "new")
        with atomic_write(staging / _JOURNAL) as f:
            json.dump([str(rel) for rel in units], f)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _roll_forward(staging, out)


def recover_staged(folder: str | Path) -> None:
    """Finish or undo what a killed `staged_exports` left in `folder`: a staging folder with a
    journal is swapped in (the new exports were complete), one without is removed."""
    out = Path(folder)
    if not out.is_dir():
        return
    for staging in sorted(out.glob(STAGING_PREFIX + "*")):
        if (staging / _JOURNAL).is_file():
            logger.warning("%s: completing an export swap a killed run left", out)
            _roll_forward(staging, out)
        else:
            shutil.rmtree(staging, ignore_errors=True)


def _units(root: Path, rel: Path) -> list[Path]:
    units: list[Path] = []
    for entry in sorted((root / rel).iterdir()):
        sub = rel / entry.name
        if entry.is_dir() and not entry.is_symlink() and not (entry / EXPORT_MARKER).exists():
            units.extend(_units(root, sub))
        else:
            units.append(sub)
    return units


def _check_target(new: Path, target: Path) -> None:
    """Refuse, before anything moves, a swap that would replace what is not ours."""
    for parent in target.parents:
        if parent.exists() and not parent.is_dir():
            raise ExportError(f"{parent}: exists and is not a directory; cannot write "
                              f"{target} under it", path=str(parent))
    if not target.exists():
        return
    if new.is_dir():
        try:
            _check_replaceable(target)
        except ExportError as err:
            raise ExportError(str(err), path=str(target)) from None
    elif target.is_dir():
        raise ExportError(f"{target}: is a directory; refusing to replace it with a file",
                          path=str(target))


def _roll_forward(staging: Path, out: Path) -> None:
    # Idempotent: an entry still in new/ is moved in (its old namesake aside first), so a kill
    # at any point is completed by running this again.
    units = [Path(p) for p in json.loads((staging / _JOURNAL).read_text(encoding="utf-8"))]
    for rel in units:
        new, target, old = staging / "new" / rel, out / rel, staging / "old" / rel
        if not new.exists() and not new.is_symlink():
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                old.parent.mkdir(parents=True, exist_ok=True)
                if old.is_dir():
                    shutil.rmtree(old)
                os.replace(target, old)
            os.replace(new, target)
        except OSError as err:
            raise ExportError(f"{target}: could not swap in the new export: {err}; the "
                              f"complete new exports wait in {staging}, and the next export "
                              f"into {out} completes the swap", path=str(target)) from err
        _fsync_dir(target.parent)
    shutil.rmtree(staging, ignore_errors=True)
