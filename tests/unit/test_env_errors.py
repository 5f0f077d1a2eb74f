"""Environment errors are one line naming the path (a `KgenrichError`, exit 2), not a
traceback: a corrupt or half-overwritten state file, a full disk (SQLite's own "database or disk
is full", and ENOSPC from a write), a folder where the state file goes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from kgenrich.errors import InputError, KgenrichError, PathError
from kgenrich.flows import io as fio
from kgenrich.pipeline.report import RunReport
from kgenrich.runs.report import RenderedReport
from kgenrich.runs.state import ChunkCommit, StateStore


def _one_line(err: KgenrichError, path: Path) -> str:
    text = str(err)
    assert "\n" not in text and str(path) in text and err.exit_code == 2
    return text


def _filled_state(path: Path, items: int = 400) -> None:
    with StateStore.open(path) as state:
        state.begin_run("r1")
        state.commit_chunk("r1", ChunkCommit(
            "extract", done={f"m{i}": ("fp", "[]" + " " * 200, "[]") for i in range(items)},
            failed={}))


def test_state_file_of_garbage_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(InputError) as err:
        StateStore.open(path)
    assert "the state store is corrupt" in _one_line(err.value, path)


def test_half_overwritten_state_file_is_found_at_open(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    _filled_state(path)
    data = bytearray(path.read_bytes())
    assert len(data) > 16 * 4096
    data[4096 * 2:4096 * 12] = os.urandom(4096 * 10)  # the header and schema page survive
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        StateStore.open(path)
    text = _one_line(err.value, path)
    assert "the state store is corrupt" in text and "delete it to start over" in text


def test_full_disk_under_the_state_store_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with StateStore.open(path) as state:
        # SQLite's own full-disk error, for real: the file may not grow any more
        state._conn.execute("PRAGMA max_page_count=12")
        state.begin_run("r1")
        with pytest.raises(PathError) as err:
            state.commit_chunk("r1", ChunkCommit(
                "extract", done={f"m{i}": ("fp", "x" * 2000, "[]") for i in range(200)},
                failed={}))
    assert "disk full" in _one_line(err.value, path)


def test_state_path_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "state.sqlite").mkdir()
    with pytest.raises(PathError, match="is a folder"):
        StateStore.open(tmp_path / "state.sqlite")


def test_enospc_writing_the_report_names_the_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("kgenrich.kg.atomic.os.fsync", full)
    report = RunReport(run="r", stages=[], decisions={}, sources={}, totals={})
    with pytest.raises(PathError) as err:
        fio.write_report(tmp_path / "out", report, RenderedReport(markdown="# r", html="<p>"))
    text = _one_line(err.value, tmp_path / "out" / "report.md")
    assert "no space left on the device (disk full)" in text
    assert not (tmp_path / "out" / "report.md").exists()  # nothing half-written
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


def test_enospc_writing_a_jsonl_file_names_it(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("kgenrich.kg.atomic.os.fsync", full)
    with pytest.raises(PathError) as err:
        fio.write_jsonl(tmp_path / "failures.jsonl", [{"item_id": "m1"}])
    assert "disk full" in _one_line(err.value, tmp_path / "failures.jsonl")
    assert list(tmp_path.iterdir()) == []
