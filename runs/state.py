"""Incremental-run state in one embedded SQLite file: which items the last runs saw (with their
fingerprints and status), each item's stored result per LLM stage (JSON of our records), the
items a stage must retry, retractions and a run log.

Every write is one transaction, so a process killed at any point leaves either the old or the
new state. The store knows nothing about stages or records beyond strings and JSON text.

Schema:
    items(item_id PK, fingerprint, status done|failed|pending|removed, error, run, updated_at)
    results(item_id, stage, fingerprint, kept JSON, rejected JSON, run, updated_at; PK item+stage)
    failures(item_id, stage, fingerprint, error, attempts, run, updated_at; PK item+stage)
    retractions(id PK, run, item_id, at, reason, payload JSON)
    runs(id PK, run, started_at, finished_at, status, summary JSON)
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from kgenrich.errors import InputError, KgenrichError, PathError

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items(
    item_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status TEXT NOT NULL,
    error TEXT, run TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results(
    item_id TEXT NOT NULL, stage TEXT NOT NULL, fingerprint TEXT NOT NULL,
    kept TEXT NOT NULL, rejected TEXT NOT NULL, run TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY(item_id, stage));
CREATE TABLE IF NOT EXISTS failures(
    item_id TEXT NOT NULL, stage TEXT NOT NULL, fingerprint TEXT NOT NULL, error TEXT NOT NULL,
    attempts INTEGER NOT NULL, run TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY(item_id, stage));
CREATE TABLE IF NOT EXISTS retractions(
    id INTEGER PRIMARY KEY AUTOINCREMENT, run TEXT NOT NULL, item_id TEXT NOT NULL,
    at TEXT NOT NULL, reason TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs(
    id INTEGER PRIMARY KEY AUTOINCREMENT, run TEXT NOT NULL, started_at TEXT NOT NULL,
    finished_at TEXT, status TEXT NOT NULL, summary TEXT);
"""

DONE, FAILED, PENDING, REMOVED = "done", "failed", "pending", "removed"


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class ItemState:
    fingerprint: str
    status: str
    error: str | None
    run: str


@dataclass(frozen=True)
class StoredResult:
    """One item's result for one stage, as JSON text of the stage's records."""

    fingerprint: str
    kept: str
    rejected: str
    run: str


@dataclass(frozen=True)
class StoredFailure:
    item_id: str
    stage: str
    fingerprint: str
    error: str
    attempts: int
    run: str


@dataclass(frozen=True)
class ChunkCommit:
    """What to record for one finished stage call on one chunk."""

    stage: str
    done: Mapping[str, tuple[str, str, str]]  # item -> (fingerprint, kept JSON, rejected JSON)
    failed: Mapping[str, tuple[str, str]]  # item -> (fingerprint, error)


_CORRUPT_HINT = ("delete it to start over (every item is asked again) or restore a copy")


def state_error(err: sqlite3.Error, path: Path | None) -> KgenrichError:
    """One line naming the state file for an SQLite error: disk full, read-only or corrupt."""
    where = str(path) if path is not None else ":memory:"
    text = str(err)
    if "full" in text:
        return PathError("cannot write the state store: no space left on the device (disk "
                         "full)", path=where)
    if "readonly" in text or "read-only" in text:
        return PathError("cannot write the state store: read-only", path=where)
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return InputError(f"the state store is corrupt ({text}); {_CORRUPT_HINT}", file=where)
    return PathError(f"state store error: {text}", path=where)


# The file or the disk, not our SQL: a corrupt file (DatabaseError itself), a full or read-only
# disk, a lock held too long (OperationalError). ProgrammingError and IntegrityError are bugs.
_ENVIRONMENT = (sqlite3.OperationalError, sqlite3.DatabaseError)


class _Guarded:
    """The connection, with every SQLite error turned into one line naming the file."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._conn = conn
        self._path = path

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, tuple(params))
        except _ENVIRONMENT as err:
            if type(err) not in _ENVIRONMENT:  # a subclass: our bug, not the environment
                raise
            raise state_error(err, self._path) from err

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        try:
            return self._conn.executemany(sql, rows)
        except _ENVIRONMENT as err:
            if type(err) not in _ENVIRONMENT:  # a subclass: our bug, not the environment
                raise
            raise state_error(err, self._path) from err

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def close(self) -> None:
        self._conn.close()


def _prepare(conn: sqlite3.Connection, path: Path | None) -> None:
    """Set the journal up, create the schema, check its version and that the file is sound."""
    try:
        # WAL survives a killed process (committed = durable in the log); NORMAL sync is
        # enough for that, only a power cut could lose the last commits.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise InputError("state store has another schema version", file=str(path),
                             expected=str(SCHEMA_VERSION), got=str(row[0]))
        # A half-overwritten file can pass the lines above; find it now, before any LLM call.
        problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
    except sqlite3.Error as err:
        raise state_error(err, path) from err
    except ValueError as err:  # a schema version that is no number
        raise InputError(f"the state store is corrupt ({err}); {_CORRUPT_HINT}",
                         file=str(path)) from err
    if problems != ["ok"]:
        raise InputError(f"the state store is corrupt ({'; '.join(problems)}); {_CORRUPT_HINT}",
                         file=str(path))


class StateStore:
    """Open with `StateStore.open(path)` (a context manager); `None` keeps it in memory.

    Every SQLite error (disk full, read-only, a corrupt file) is a `KgenrichError` naming the
    file; `open` runs SQLite's quick check, so a half-overwritten file stops the run before
    any LLM call."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._conn = _Guarded(conn, path)
        self.path = path

    @classmethod
    def open(cls, path: Path | None) -> StateStore:
        if path is not None:
            path = Path(path)
            if path.is_dir():
                raise PathError("the state store is a folder, not a file", path=str(path))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise PathError.from_os_error(err, path=str(path.parent),
                                              doing="cannot create the state folder") from err
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per write.
            conn = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None,
                                   check_same_thread=False, timeout=30.0)
        except sqlite3.Error as err:
            raise state_error(err, path) from err
        try:
            _prepare(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[_Guarded]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            # SQLite has already rolled back after some errors (a full disk): then a ROLLBACK
            # would fail and hide the error that matters
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except KgenrichError:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    # ---- run log

    def begin_run(self, run: str) -> int:
        with self._tx() as c:
            cur = c.execute("INSERT INTO runs(run, started_at, status) VALUES (?, ?, 'running')",
                            (run, _now()))
            return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, *, status: str, summary: Mapping[str, Any]) -> None:
        with self._tx() as c:
            c.execute("UPDATE runs SET finished_at=?, status=?, summary=? WHERE id=?",
                      (_now(), status, json.dumps(summary, default=str), run_id))

    def runs(self) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT id, run, started_at, finished_at, status, summary FROM runs ORDER BY id")
        return [{"id": r[0], "run": r[1], "started_at": r[2], "finished_at": r[3],
                 "status": r[4], "summary": json.loads(r[5]) if r[5] else None} for r in rows]

    # ---- items

    def items(self, *, include_removed: bool = False) -> dict[str, ItemState]:
        sql = "SELECT item_id, fingerprint, status, error, run FROM items"
        if not include_removed:
            sql += f" WHERE status != '{REMOVED}'"
        return {r[0]: ItemState(r[1], r[2], r[3], r[4]) for r in self._conn.execute(sql)}

    def known_items(self) -> dict[str, str]:
        """Item id -> fingerprint of every item not removed, including items that only have
        stored results (a run killed before it recorded its items)."""
        out = {i: s.fingerprint for i, s in self.items().items()}
        for (item,) in self._conn.execute("SELECT DISTINCT item_id FROM results"):
            out.setdefault(item, "")
        return out

    def record_items(self, run: str, items: Mapping[str, tuple[str, str, str | None]]) -> None:
        """Upsert item id -> (fingerprint, status, error) in one transaction."""
        now = _now()
        with self._tx() as c:
            c.executemany(
                "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(item_id) DO UPDATE SET "
                "fingerprint=excluded.fingerprint, status=excluded.status, error=excluded.error,"
                " run=excluded.run, updated_at=excluded.updated_at",
                [(i, fp, st, err, run, now) for i, (fp, st, err) in items.items()])

    # ---- stage results

    def results(self, stage: str) -> dict[str, StoredResult]:
        rows = self._conn.execute(
            "SELECT item_id, fingerprint, kept, rejected, run FROM results WHERE stage=?",
            (stage,))
        return {r[0]: StoredResult(r[1], r[2], r[3], r[4]) for r in rows}

    def fingerprints(self, stage: str) -> dict[str, str]:
        rows = self._conn.execute("SELECT item_id, fingerprint FROM results WHERE stage=?",
                                  (stage,))
        return dict(rows.fetchall())

    def commit_chunk(self, run: str, chunk: ChunkCommit) -> None:
        """Store a chunk's finished items and note its failed ones, in one transaction. A failed
        item keeps its older result (if any); its failure row makes the next run retry it."""
        now = _now()
        with self._tx() as c:
            c.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(item_id, stage) "
                "DO UPDATE SET fingerprint=excluded.fingerprint, kept=excluded.kept, "
                "rejected=excluded.rejected, run=excluded.run, updated_at=excluded.updated_at",
                [(i, chunk.stage, fp, kept, rej, run, now)
                 for i, (fp, kept, rej) in chunk.done.items()])
            c.executemany("DELETE FROM failures WHERE item_id=? AND stage=?",
                          [(i, chunk.stage) for i in chunk.done])
            c.executemany(
                "INSERT INTO failures VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT(item_id, stage) "
                "DO UPDATE SET fingerprint=excluded.fingerprint, error=excluded.error, "
                "attempts=failures.attempts + 1, run=excluded.run, updated_at=excluded.updated_at",
                [(i, chunk.stage, fp, err, run, now) for i, (fp, err) in chunk.failed.items()])

    def failures(self, stage: str | None = None) -> list[StoredFailure]:
        sql = "SELECT item_id, stage, fingerprint, error, attempts, run FROM failures"
        rows = (self._conn.execute(sql + " WHERE stage=? ORDER BY item_id", (stage,))
                if stage else self._conn.execute(sql + " ORDER BY item_id, stage"))
        return [StoredFailure(*r) for r in rows]

    def clear_failures(self, item_ids: Iterable[str]) -> None:
        with self._tx() as c:
            c.executemany("DELETE FROM failures WHERE item_id=?", [(i,) for i in item_ids])

    # ---- removals

    def remove_items(self, run: str, removals: Mapping[str, tuple[str, str]]) -> None:
        """item -> (reason, payload JSON): log the retraction, drop the item's results and
        failures, and mark it removed, all in one transaction."""
        now = _now()
        with self._tx() as c:
            for item, (reason, payload) in removals.items():
                c.execute("INSERT INTO retractions(run, item_id, at, reason, payload) "
                          "VALUES (?, ?, ?, ?, ?)", (run, item, now, reason, payload))
                c.execute("DELETE FROM results WHERE item_id=?", (item,))
                c.execute("DELETE FROM failures WHERE item_id=?", (item,))
                c.execute(
                    "INSERT INTO items VALUES (?, '', ?, NULL, ?, ?) ON CONFLICT(item_id) DO "
                    "UPDATE SET status=excluded.status, run=excluded.run, "
                    "updated_at=excluded.updated_at", (item, REMOVED, run, now))

    def retractions(self) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT run, item_id, at, reason, payload FROM retractions ORDER BY id")
        return [{"run": r[0], "item_id": r[1], "at": r[2], "reason": r[3],
                 **json.loads(r[4])} for r in rows]
