"""The server's tables and the engine behind them: SQLite embedded, or PostgreSQL shared.

SQLAlchemy Core (no ORM). `--db` takes a file path (SQLite, the default) or a
`postgresql://…` URL; several servers and `musicgen-ft worker` processes on several machines
then share one queue. Every statement commits on return, so a process killed with `kill -9`
loses no job.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

METADATA = sa.MetaData()


def _delivery_and_times() -> list[sa.Column[Any]]:
    """Columns every queued job has: its webhook, where its URLs point, its times, and the
    worker holding it ("host:pid:nonce") with its last sign of life."""
    return [
        sa.Column("webhook", sa.Text),
        sa.Column("webhook_events_filter", sa.JSON),
        sa.Column("base_url", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("completed_at", sa.Float),
        sa.Column("worker_id", sa.String),
        sa.Column("heartbeat_at", sa.Float),
    ]


def _attempts() -> sa.Column[Any]:
    """How many times the job was started (1 + resumes)."""
    return sa.Column("attempts", sa.Integer, nullable=False, server_default="0")


trainings = sa.Table(
    "trainings",
    METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("token_id", sa.String, nullable=False),
    sa.Column("model", sa.String, nullable=False),
    sa.Column("version", sa.String, nullable=False),
    sa.Column("destination", sa.String, nullable=False),
    sa.Column("input", sa.JSON, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("output_version", sa.String),
    *_delivery_and_times(),
    sa.Column("pid", sa.Integer),  # the trainer's process group on the worker's machine
    _attempts(),
    sa.Index("trainings_by_token", "token_id", "seq"),
    sa.Index("trainings_by_status", "status", "seq"),
)

models = sa.Table(
    "models",
    METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("token_id", sa.String, nullable=False),
    sa.Column("owner", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("visibility", sa.String, nullable=False),
    sa.Column("hardware", sa.String),
    sa.Column("github_url", sa.Text),
    sa.Column("paper_url", sa.Text),
    sa.Column("license_url", sa.Text),
    sa.Column("cover_image_url", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("token_id", "owner", "name"),
)

versions = sa.Table(
    "versions",
    METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String, nullable=False),
    sa.Column("token_id", sa.String, nullable=False),
    sa.Column("owner", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("training_id", sa.String, nullable=False, unique=True),
    sa.Column("weights_path", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("token_id", "owner", "name", "id"),
)

trainer_versions = sa.Table(
    "trainer_versions",
    METADATA,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

webhook_secrets = sa.Table(
    "webhook_secrets",
    METADATA,
    sa.Column("token_id", sa.String, primary_key=True),
    sa.Column("secret", sa.String, nullable=False),
)

# Runs of a model (a fine-tuned version, or a base variant); the queue of the predictor.
predictions = sa.Table(
    "predictions",
    METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("token_id", sa.String, nullable=False),
    sa.Column("model", sa.String, nullable=False),
    sa.Column("version", sa.String, nullable=False),
    # What the predictor loads: a trained_model.tar, or (None) the base `variant`.
    sa.Column("weights_path", sa.Text),
    sa.Column("variant", sa.String, nullable=False),
    sa.Column("input", sa.JSON, nullable=False),  # as the request gave it
    sa.Column("params", sa.JSON, nullable=False),  # what the predictor runs (files resolved)
    sa.Column("status", sa.String, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("output", sa.String),  # the output file's name in the prediction's folder
    *_delivery_and_times(),
    _attempts(),
    sa.Index("predictions_by_token", "token_id", "seq"),
    sa.Index("predictions_by_status", "status", "seq"),
)

# Uploads of POST /v1/files, kept under <data_dir>/files/<id>/<name>.
files = sa.Table(
    "files",
    METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("token_id", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("content_type", sa.String, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String, nullable=False),
    sa.Column("md5", sa.String, nullable=False),
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("files_by_token", "token_id", "seq"),
)


def database_url(value: str | Path) -> str:
    """`--db` as a SQLAlchemy URL: a URL is kept (postgresql:// means psycopg 3), a path is
    a SQLite file."""
    text = str(value)
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if "://" in text:
        return text
    path = Path(text).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def redact(url: str) -> str:
    """`url` fit for a log line: the password hidden."""
    return sa.make_url(url).render_as_string(hide_password=True)


def is_shared(url: str) -> bool:
    """Whether the database can be shared by processes on several machines."""
    return not url.startswith("sqlite")


def make_engine(url: str) -> sa.Engine:
    """An engine with the tables created; SQLite in WAL mode with full fsync."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling would defer BEGIN; take it over so that a
            # claim's BEGIN IMMEDIATE really locks the file against a second worker.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    METADATA.create_all(engine)
    return engine


def page_rows(
    conn: sa.Connection,
    table: sa.Table,
    where: sa.ColumnElement[bool],
    *,
    before: int | None,
    after: int | None,
    limit: int,
) -> tuple[list[sa.Row[Any]], bool]:
    """One page of `table` rows matching `where`, newest (highest `seq`) first.

    `before`/`after` are exclusive `seq` bounds (cursor pagination); returns the rows and
    whether more exist beyond the page in that direction.
    """
    seq = table.c.seq
    if after is not None:
        query = sa.select(table).where(where, seq > after).order_by(seq.asc()).limit(limit + 1)
        rows = list(conn.execute(query))
        return list(reversed(rows[:limit])), len(rows) > limit
    bound = before if before is not None else 2**62
    query = sa.select(table).where(where, seq < bound).order_by(seq.desc()).limit(limit + 1)
    rows = list(conn.execute(query))
    return rows[:limit], len(rows) > limit


def row_as(cls: type[Any], row: sa.Row[Any] | None) -> Any:
    """A result row as the dataclass `cls` (its fields by name), or None."""
    if row is None:
        return None
    values = row._mapping
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})


def exists(conn: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool]) -> bool:
    return (
        conn.execute(sa.select(sa.literal(1)).select_from(table).where(where).limit(1)).first()
        is not None
    )
