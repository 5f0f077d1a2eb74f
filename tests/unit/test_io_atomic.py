"""Atomic file and directory writes leave nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgenrich.errors import ExportError
from kgenrich.kg.atomic import EXPORT_MARKER, atomic_dir, atomic_write


def test_atomic_write_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("new")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]
    with atomic_write(target, mode="wb") as raw:
        raw.write(b"new")
    assert target.read_bytes() == b"new"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_dir_swaps_whole_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "export"
    with atomic_dir(target) as out:
        (out / "a.txt").write_text("1")
        (out / "stale.txt").write_text("x")
    with atomic_dir(target) as out:
        (out / "a.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == [EXPORT_MARKER, "a.txt"]
    with pytest.raises(RuntimeError), atomic_dir(target) as out:
        (out / "a.txt").write_text("3")
        raise RuntimeError("boom")
    assert (target / "a.txt").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_atomic_dir_refuses_foreign_directories(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ExportError, match="refusing"), atomic_dir(tmp_path) as out:
        (out / "a.txt").write_text("1")
    assert (tmp_path / "precious.txt").read_text() == "keep me"
