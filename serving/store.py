"""SQLite state of the server: trainings, destination models and versions, webhook secrets.

One connection guarded by a lock, WAL mode, autocommit: every state change is on disk when the
call returns, so a server killed with `kill -9` loses no job. Rows are plain dataclasses.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from musicgen_ft.constants import TERMINAL_STATUSES

TERMINAL = TERMINAL_STATUSES
ACTIVE = ("starting", "processing")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trainings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    token_id TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    destination TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    output_version TEXT,
    webhook TEXT,
    webhook_events_filter TEXT,
    base_url TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    pid INTEGER
);
CREATE INDEX IF NOT EXISTS trainings_by_token ON trainings (token_id, seq);
CREATE INDEX IF NOT EXISTS trainings_by_status ON trainings (status, seq);
CREATE TABLE IF NOT EXISTS models (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    visibility TEXT NOT NULL,
    hardware TEXT,
    github_url TEXT,
    paper_url TEXT,
    license_url TEXT,
    cover_image_url TEXT,
    created_at REAL NOT NULL,
    UNIQUE (token_id, owner, name)
);
CREATE TABLE IF NOT EXISTS versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    token_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    training_id TEXT NOT NULL,
    weights_path TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (token_id, owner, name, id)
);
CREATE TABLE IF NOT EXISTS trainer_versions (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_secrets (
    token_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class TrainingRow:
    seq: int
    id: str
    token_id: str
    model: str
    version: str
    destination: str
    input: dict[str, Any]
    status: str
    error: str | None
    output_version: str | None
    webhook: str | None
    webhook_events_filter: list[str] | None
    base_url: str
    created_at: float
    started_at: float | None
    completed_at: float | None
    pid: int | None


@dataclass(frozen=True)
class ModelRow:
    seq: int
    token_id: str
    owner: str
    name: str
    description: str | None
    visibility: str
    hardware: str | None
    github_url: str | None
    paper_url: str | None
    license_url: str | None
    cover_image_url: str | None
    created_at: float


@dataclass(frozen=True)
class VersionRow:
    seq: int
    id: str
    token_id: str
    owner: str
    name: str
    training_id: str
    weights_path: str
    created_at: float


_JSON_COLUMNS = {"input", "webhook_events_filter"}


def _training(row: sqlite3.Row) -> TrainingRow:
    values = {
        f.name: json.loads(row[f.name]) if f.name in _JSON_COLUMNS and row[f.name] else row[f.name]
        for f in fields(TrainingRow)
    }
    return TrainingRow(**values)


class Store:
    """Thread-safe access to the server's SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            yield self._db.cursor()

    # --- trainings -------------------------------------------------------------------------

    def add_training(
        self,
        *,
        id: str,
        token_id: str,
        model: str,
        version: str,
        destination: str,
        input: dict[str, Any],
        webhook: str | None,
        webhook_events_filter: list[str] | None,
        base_url: str,
    ) -> TrainingRow:
        with self._cursor() as cur:
            cur.execute(
                "INSERT INTO trainings (id, token_id, model, version, destination, input, status,"
                " webhook, webhook_events_filter, base_url, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'starting', ?, ?, ?, ?)",
                (
                    id,
                    token_id,
                    model,
                    version,
                    destination,
                    json.dumps(input),
                    webhook,
                    None if webhook_events_filter is None else json.dumps(webhook_events_filter),
                    base_url,
                    time.time(),
                ),
            )
        row = self.training(id)
        assert row is not None
        return row

    def training(self, id: str, token_id: str | None = None) -> TrainingRow | None:
        """The training `id`; with `token_id`, only if that token created it."""
        with self._cursor() as cur:
            row = cur.execute("SELECT * FROM trainings WHERE id = ?", (id,)).fetchone()
        if row is None or (token_id is not None and row["token_id"] != token_id):
            return None
        return _training(row)

    def trainings_page(
        self, token_id: str, *, before: int | None, after: int | None, limit: int
    ) -> tuple[list[TrainingRow], bool]:
        """Newest first. `before`/`after` are seq bounds; returns (rows, more beyond)."""
        with self._cursor() as cur:
            if after is not None:
                rows = cur.execute(
                    "SELECT * FROM trainings WHERE token_id = ? AND seq > ? ORDER BY seq ASC"
                    " LIMIT ?",
                    (token_id, after, limit + 1),
                ).fetchall()
                more = len(rows) > limit
                return [_training(r) for r in reversed(rows[:limit])], more
            rows = cur.execute(
                "SELECT * FROM trainings WHERE token_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                (token_id, before if before is not None else 2**62, limit + 1),
            ).fetchall()
        return [_training(r) for r in rows[:limit]], len(rows) > limit

    def has_trainings(
        self, token_id: str, *, before: int | None = None, after: int | None = None
    ) -> bool:
        query = "SELECT 1 FROM trainings WHERE token_id = ?"
        args: list[Any] = [token_id]
        if before is not None:
            query += " AND seq < ?"
            args.append(before)
        if after is not None:
            query += " AND seq > ?"
            args.append(after)
        with self._cursor() as cur:
            return cur.execute(query + " LIMIT 1", args).fetchone() is not None

    def trainings_with_status(self, *statuses: str) -> list[TrainingRow]:
        marks = ",".join("?" for _ in statuses)
        with self._cursor() as cur:
            rows = cur.execute(
                f"SELECT * FROM trainings WHERE status IN ({marks}) ORDER BY seq", statuses
            ).fetchall()
        return [_training(r) for r in rows]

    def count_trainings(self, token_id: str) -> int:
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT COUNT(*) FROM trainings WHERE token_id = ?", (token_id,)
            ).fetchone()
        return int(row[0])

    def mark_processing(self, id: str) -> bool:
        """starting -> processing; False when the training was canceled meanwhile."""
        with self._cursor() as cur:
            cur.execute(
                "UPDATE trainings SET status = 'processing', started_at = ?"
                " WHERE id = ? AND status = 'starting'",
                (time.time(), id),
            )
            return cur.rowcount == 1

    def set_pid(self, id: str, pid: int | None) -> None:
        with self._cursor() as cur:
            cur.execute("UPDATE trainings SET pid = ? WHERE id = ?", (pid, id))

    def finish(
        self, id: str, status: str, *, error: str | None = None, output_version: str | None = None
    ) -> bool:
        """Move an active training to a terminal status. False if it already ended (races)."""
        assert status in TERMINAL
        with self._cursor() as cur:
            cur.execute(
                "UPDATE trainings SET status = ?, error = ?, output_version = ?, completed_at = ?"
                " WHERE id = ? AND status IN ('starting', 'processing')",
                (status, error, output_version, time.time(), id),
            )
            return cur.rowcount == 1

    # --- models and versions ---------------------------------------------------------------

    def add_model(self, token_id: str, owner: str, name: str, **extra: str | None) -> ModelRow:
        """Insert a destination model; raises sqlite3.IntegrityError if it exists."""
        columns = ["token_id", "owner", "name", *extra, "created_at"]
        values = [token_id, owner, name, *extra.values(), time.time()]
        with self._cursor() as cur:
            cur.execute(
                f"INSERT INTO models ({', '.join(columns)})"
                f" VALUES ({', '.join('?' for _ in columns)})",
                values,
            )
        model = self.model(token_id, owner, name)
        assert model is not None
        return model

    def model(self, token_id: str, owner: str, name: str) -> ModelRow | None:
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT * FROM models WHERE token_id = ? AND owner = ? AND name = ?",
                (token_id, owner, name),
            ).fetchone()
        return None if row is None else ModelRow(**dict(row))

    def models(self, token_id: str) -> list[ModelRow]:
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT * FROM models WHERE token_id = ? ORDER BY seq DESC", (token_id,)
            ).fetchall()
        return [ModelRow(**dict(r)) for r in rows]

    def add_version(
        self, *, id: str, token_id: str, owner: str, name: str, training_id: str, weights: Path
    ) -> VersionRow:
        with self._cursor() as cur:
            cur.execute(
                "INSERT INTO versions (id, token_id, owner, name, training_id, weights_path,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (id, token_id, owner, name, training_id, str(weights), time.time()),
            )
        version = self.version(token_id, owner, name, id)
        assert version is not None
        return version

    def version(self, token_id: str, owner: str, name: str, id: str) -> VersionRow | None:
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT * FROM versions WHERE token_id = ? AND owner = ? AND name = ? AND id = ?",
                (token_id, owner, name, id),
            ).fetchone()
        return None if row is None else VersionRow(**dict(row))

    def versions(self, token_id: str, owner: str, name: str) -> list[VersionRow]:
        """Newest first."""
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT * FROM versions WHERE token_id = ? AND owner = ? AND name = ?"
                " ORDER BY seq DESC",
                (token_id, owner, name),
            ).fetchall()
        return [VersionRow(**dict(r)) for r in rows]

    # --- the trainer's own versions, webhook secrets -------------------------------------

    def ensure_trainer_version(self, id: str) -> None:
        with self._cursor() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO trainer_versions (id, created_at) VALUES (?, ?)",
                (id, time.time()),
            )

    def trainer_versions(self) -> list[tuple[str, float]]:
        """(id, created_at) of every engine version this server has run, newest first."""
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT id, created_at FROM trainer_versions ORDER BY created_at DESC"
            ).fetchall()
        return [(r["id"], r["created_at"]) for r in rows]

    def webhook_secret(self, token_id: str, make: str) -> str:
        """The token's signing secret; `make` is stored if it has none yet."""
        with self._cursor() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO webhook_secrets (token_id, secret) VALUES (?, ?)",
                (token_id, make),
            )
            row = cur.execute(
                "SELECT secret FROM webhook_secrets WHERE token_id = ?", (token_id,)
            ).fetchone()
        return str(row["secret"])
