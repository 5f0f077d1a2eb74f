"""A run's exports appear together or not at all: a writer failing midway, a full disk, a kill
during the export or during the swap leave the previous output whole, byte for byte, and the
files that are not exports (state store, review verdicts) are never touched. `kgenrich export
RUN --out RUN` keeps the run's ratings and ids."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kgenrich import cli
from kgenrich.errors import ExportError
from kgenrich.flows import io as fio
from kgenrich.kg import atomic
from kgenrich.kg.atomic import STAGING_PREFIX, recover_staged
from kgenrich.kg.records import Decision, Entity, Provenance, SourceKind, Triple
from kgenrich.settings import ExportSettings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:rdflib")

ITEMS = ["m3", "m1", "m2"]  # catalog order, not sorted: it fixes the RippleNet ints


def _graph(director: str) -> tuple[list[Entity], list[Triple]]:
    trusted = Provenance(source=SourceKind.CATALOG, decision=Decision.TRUSTED)
    entities = [Entity(id=f"item/{i}", label=f"Movie {i}", type="Movie") for i in ITEMS]
    entities += [Entity(id=f"person/{director}", label=director, type="Person"),
                 Entity(id="genre/drama", label="Drama", type="Genre")]
    triples = [Triple(head=f"item/{i}", relation="has_genre", tail="genre/drama",
                      provenance=trusted.model_copy(update={"item_id": i})) for i in ITEMS]
    triples.append(Triple(head="item/m2", relation="directed_by", tail=f"person/{director}",
                          provenance=trusted.model_copy(update={"item_id": "m2"})))
    return entities, triples


def _interactions(folder: Path) -> Path:
    path = folder / "ratings.csv"
    rows = ["user_id,item_id,rating", "u2,m1,5", "u1,m3,4", "u1,m2,1", "u3,m2,5", "u10,m1,4"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _export(out: Path, director: str, interactions: Path | None) -> fio.WrittenExports:
    entities, triples = _graph(director)
    return fio.write_exports(out, entities=entities, triples=triples, items=ITEMS,
                             interactions=interactions, settings=ExportSettings())


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.relative_to(folder).parts[0].startswith(STAGING_PREFIX)}


@pytest.fixture
def previous(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """An output folder holding a complete export, a state store and review verdicts."""
    out = tmp_path / "out"
    _export(out, "ann", _interactions(tmp_path))
    (out / "state.sqlite").write_bytes(b"state")
    (out / "review.jsonl").write_text('{"verdict": "accept"}\n', encoding="utf-8")
    return out, _snapshot(out)


def test_complete_export_replaces_exports_and_keeps_state_and_review(
    previous: tuple[Path, dict[str, bytes]],
) -> None:
    out, before = previous
    for name in ("graph.ttl", "graph.nq", "graph.graphml", "ripplenet/ratings_final.txt",
                 "recbole/kgenrich/kgenrich.inter", "triples.parquet", "entities.parquet",
                 "triples.jsonl", "export_inputs.json", "interactions/ratings.csv"):
        assert name in before
    written = _export(out, "bob", None)
    after = _snapshot(out)
    assert after["state.sqlite"] == b"state" and after["review.jsonl"] == before["review.jsonl"]
    assert b"person/bob" in after["triples.jsonl"] and b"person/ann" not in after["graph.ttl"]
    assert all(p.exists() and STAGING_PREFIX not in str(p) for p in written.paths.values())
    assert not list(out.glob(STAGING_PREFIX + "*"))


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_writer_failing_midway_leaves_previous_output_byte_identical(
    previous: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch,
    failure: type[BaseException],
) -> None:
    out, before = previous

    def dies(staging: Path, job: object) -> object:
        (staging / "ripplenet").mkdir()
        (staging / "ripplenet" / "kg_final.txt").write_text("0\t0\t1\n", encoding="utf-8")
        raise failure("killed")

    monkeypatch.setitem(fio.WRITERS, "ripplenet", dies)  # after turtle, nquads and graphml
    with pytest.raises(failure):
        _export(out, "bob", None)
    assert _snapshot(out) == before
    assert not list(out.glob(STAGING_PREFIX + "*"))


def test_full_disk_is_an_export_error_naming_the_path_and_keeps_previous_output(
    previous: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, before = previous

    def disk_full(staging: Path, job: object) -> object:
        with (staging / "triples.parquet").open("wb") as f:
            f.write(b"PAR1 half a file")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setitem(fio.WRITERS, "parquet", disk_full)  # the last format writer
    with pytest.raises(ExportError) as info:
        _export(out, "bob", None)
    assert info.value.path == str(out)
    assert str(out) in str(info.value) and "parquet" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ENOSPC
    assert _snapshot(out) == before


def test_kill_during_the_swap_is_completed_by_the_next_export(
    previous: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, before = previous
    real_replace = os.replace
    calls = {"n": 0}

    def killed_midway(src: object, dst: object) -> None:
        if STAGING_PREFIX in str(src) and STAGING_PREFIX not in str(dst):  # moving one in
            calls["n"] += 1
            if calls["n"] > 3:
                raise KeyboardInterrupt("killed mid-swap")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic.os, "replace", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        _export(out, "bob", None)
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert list(out.glob(STAGING_PREFIX + "*"))  # the journalled swap waits
    recover_staged(out)
    assert not list(out.glob(STAGING_PREFIX + "*"))
    expected_dir = out.parent / "expected"
    _export(expected_dir, "bob", None)
    after, expected = _snapshot(out), _snapshot(expected_dir)
    for name in expected:  # every new export is in place, whole
        if name not in ("export_inputs.json",):
            assert after[name] == expected[name], name
    assert after["state.sqlite"] == before["state.sqlite"]


_KILLED_EXPORT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from kgenrich.flows import io as fio
    from kgenrich.kg.records import Entity
    from kgenrich.settings import ExportSettings

    def hangs(staging, job):
        (staging / "graph.graphml").write_text("<graphml half", encoding="utf-8")
        Path(sys.argv[2]).write_text("ready")
        time.sleep(600)

    fio.WRITERS["graphml"] = hangs
    fio.write_exports(Path(sys.argv[1]), entities=[Entity(id="x", label="x", type="Thing")],
                      triples=[], items=None, interactions=None, settings=ExportSettings())
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_during_export_leaves_previous_output_byte_identical(
    previous: tuple[Path, dict[str, bytes]], tmp_path: Path,
) -> None:
    out, before = previous
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_EXPORT, str(out), str(ready)])
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, "the export process ended before the kill"
            assert time.monotonic() < deadline, "the export never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _snapshot(out) == before
    assert list(out.glob(STAGING_PREFIX + "*"))  # only the unfinished staging folder is left
    recover_staged(out)  # a staging folder without a journal is dropped
    assert not list(out.glob(STAGING_PREFIX + "*")) and _snapshot(out) == before


def test_a_directory_not_ours_is_never_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "ripplenet").mkdir(parents=True)
    (out / "ripplenet" / "mine.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(ExportError) as info:
        _export(out, "ann", None)
    assert info.value.path == str(out / "ripplenet")
    assert (out / "ripplenet" / "mine.txt").read_text(encoding="utf-8") == "keep"
    assert not (out / "graph.ttl").exists()  # nothing else appeared either


def test_cli_export_into_the_run_keeps_ratings_and_ids(
    previous: tuple[Path, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, before = previous
    (tmp_path / "ratings.csv").unlink()  # the run's own copy must do
    monkeypatch.setattr(cli, "_setup_logging", lambda verbose: None)
    result = CliRunner().invoke(cli.app, ["export", str(out), "--out", str(out)])
    assert result.exit_code == 0, result.output
    after = _snapshot(out)
    for name in ("ratings_final.txt", "user_index.tsv", "item_index2entity_id.txt",
                 "entity_index.tsv", "kg_final.txt"):
        assert after[f"ripplenet/{name}"] == before[f"ripplenet/{name}"], name
    assert after["recbole/kgenrich/kgenrich.inter"] == before["recbole/kgenrich/kgenrich.inter"]
    assert after == before  # the same run exported again is the same output
    # --interactions gives them again, and they replace the recorded copy.
    fewer = tmp_path / "fewer.csv"
    fewer.write_text("user_id,item_id,rating\nu1,m3,5\n", encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["export", str(out), "--out", str(out),
                                          "--interactions", str(fewer)])
    assert result.exit_code == 0, result.output
    assert (out / "ripplenet" / "ratings_final.txt").read_text(encoding="utf-8") != \
        before["ripplenet/ratings_final.txt"].decode()
    assert fio.read_export_inputs(out).interactions == out / "interactions" / "fewer.csv"
    assert not (out / "interactions" / "ratings.csv").exists()
    assert (out / "ripplenet" / "item_index2entity_id.txt").read_bytes() == \
        before["ripplenet/item_index2entity_id.txt"]
