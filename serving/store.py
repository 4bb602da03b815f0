"""The server's state: trainings (the queue), destination models and versions, webhook secrets.

Plain dataclass rows over the SQLAlchemy Core tables of `serving.db`. Every call is one
transaction, committed when it returns, so a server killed with `kill -9` loses no job.

The queue is shared by every worker that uses the same database: `claim` takes the oldest
queued training, or one whose worker stopped sending heartbeats, in one transaction
(`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), so no two
workers ever hold the same job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from musicgen_ft.constants import TERMINAL_STATUSES
from serving import db, jobqueue
from serving.db import models, trainer_versions, trainings, versions, webhook_secrets
from serving.paging import TablePage

TERMINAL = TERMINAL_STATUSES
ACTIVE = ("starting", "processing")

__all__ = ["ACTIVE", "TERMINAL", "IntegrityError", "ModelRow", "Store", "TrainingRow", "VersionRow"]


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
    worker_id: str | None
    heartbeat_at: float | None
    pid: int | None
    attempts: int


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


class Store:
    """Thread-safe access to the server's database (a SQLite file or a PostgreSQL URL)."""

    def __init__(self, location: str | Path) -> None:
        self.url = db.database_url(location)
        self.engine = db.make_engine(self.url)
        self.training_pages = TablePage(self.engine, trainings)

    def close(self) -> None:
        self.engine.dispose()

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
        with self.engine.begin() as conn:
            conn.execute(
                trainings.insert().values(
                    id=id,
                    token_id=token_id,
                    model=model,
                    version=version,
                    destination=destination,
                    input=input,
                    status="starting",
                    webhook=webhook,
                    webhook_events_filter=webhook_events_filter,
                    base_url=base_url,
                    created_at=time.time(),
                    attempts=0,
                )
            )
        row = self.training(id)
        assert row is not None
        return row

    def training(self, id: str, token_id: str | None = None) -> TrainingRow | None:
        """The training `id`; with `token_id`, only if that token created it."""
        with self.engine.begin() as conn:
            row: TrainingRow | None = db.row_as(
                TrainingRow, conn.execute(trainings.select().where(trainings.c.id == id)).first()
            )
        if row is None or (token_id is not None and row.token_id != token_id):
            return None
        return row

    def trainings_with_status(self, *statuses: str) -> list[TrainingRow]:
        query = trainings.select().where(trainings.c.status.in_(statuses)).order_by(trainings.c.seq)
        with self.engine.begin() as conn:
            return [db.row_as(TrainingRow, r) for r in conn.execute(query)]

    def count_trainings(self, token_id: str) -> int:
        query = sa.select(sa.func.count()).where(trainings.c.token_id == token_id)
        with self.engine.begin() as conn:
            return int(conn.execute(query).scalar_one())

    # --- the queue -------------------------------------------------------------------------

    def claim(self, worker_id: str, *, stale_s: float) -> TrainingRow | None:
        """Take the oldest training that is queued, or running under a worker silent for
        `stale_s` seconds (or released), for `worker_id`; None when there is none.

        A claimed training is `processing`, holds `worker_id` and a fresh heartbeat, and has
        `attempts` counted up (2 and more: a resume)."""
        found = jobqueue.claim(
            self.engine,
            trainings,
            worker_id,
            stale_s=stale_s,
            started_at=sa.func.coalesce(trainings.c.started_at, time.time()),
            pid=None,
        )
        claimed: TrainingRow | None = db.row_as(TrainingRow, found)
        return claimed

    def heartbeat(self, id: str, worker_id: str) -> str | None:
        """Renew `worker_id`'s hold on training `id`; returns its status (e.g. `canceled`
        when the API canceled it), or None when the job is no longer held by this worker."""
        return jobqueue.heartbeat(self.engine, trainings, id, worker_id)

    def release(self, id: str, worker_id: str | None = None) -> bool:
        """Give a running training back to the queue to be resumed by the next claim.
        With `worker_id`, only if that worker still holds it."""
        c = trainings.c
        where = sa.and_(c.id == id, c.status == "processing")
        if worker_id is not None:
            where = sa.and_(where, c.worker_id == worker_id)
        with self.engine.begin() as conn:
            result = conn.execute(
                trainings.update().where(where).values(worker_id=None, heartbeat_at=None)
            )
        return result.rowcount == 1

    def set_pid(self, id: str, pid: int | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(trainings.update().where(trainings.c.id == id).values(pid=pid))

    def finish(
        self, id: str, status: str, *, error: str | None = None, output_version: str | None = None
    ) -> bool:
        """Move an active training to a terminal status. False if it already ended (races)."""
        assert status in TERMINAL
        return jobqueue.finish(
            self.engine, trainings, id, status, error=error, output_version=output_version
        )

    # --- models and versions ---------------------------------------------------------------

    def add_model(self, token_id: str, owner: str, name: str, **extra: str | None) -> ModelRow:
        """Insert a destination model; raises IntegrityError if it exists."""
        with self.engine.begin() as conn:
            conn.execute(
                models.insert().values(
                    token_id=token_id, owner=owner, name=name, created_at=time.time(), **extra
                )
            )
        model = self.model(token_id, owner, name)
        assert model is not None
        return model

    def model(self, token_id: str, owner: str, name: str) -> ModelRow | None:
        c = models.c
        query = models.select().where(c.token_id == token_id, c.owner == owner, c.name == name)
        with self.engine.begin() as conn:
            row: ModelRow | None = db.row_as(ModelRow, conn.execute(query).first())
        return row

    def models(self, token_id: str) -> list[ModelRow]:
        query = models.select().where(models.c.token_id == token_id).order_by(models.c.seq.desc())
        with self.engine.begin() as conn:
            return [db.row_as(ModelRow, r) for r in conn.execute(query)]

    def add_version(
        self, *, id: str, token_id: str, owner: str, name: str, training_id: str, weights: Path
    ) -> VersionRow:
        """The version made by `training_id`: inserted once, the same row on a repeat (a
        worker that died between this and `finish` leaves no second version behind)."""
        with self.engine.begin() as conn:
            existing = conn.execute(
                versions.select().where(versions.c.training_id == training_id)
            ).first()
            if existing is None:
                conn.execute(
                    versions.insert().values(
                        id=id,
                        token_id=token_id,
                        owner=owner,
                        name=name,
                        training_id=training_id,
                        weights_path=str(weights),
                        created_at=time.time(),
                    )
                )
                existing = conn.execute(
                    versions.select().where(versions.c.training_id == training_id)
                ).first()
        row: VersionRow = db.row_as(VersionRow, existing)
        return row

    def version(self, token_id: str, owner: str, name: str, id: str) -> VersionRow | None:
        c = versions.c
        query = versions.select().where(
            c.token_id == token_id, c.owner == owner, c.name == name, c.id == id
        )
        with self.engine.begin() as conn:
            row: VersionRow | None = db.row_as(VersionRow, conn.execute(query).first())
        return row

    def versions(self, token_id: str, owner: str, name: str) -> list[VersionRow]:
        """Newest first."""
        c = versions.c
        query = (
            versions.select()
            .where(c.token_id == token_id, c.owner == owner, c.name == name)
            .order_by(c.seq.desc())
        )
        with self.engine.begin() as conn:
            return [db.row_as(VersionRow, r) for r in conn.execute(query)]

    # --- the trainer's own versions, webhook secrets -------------------------------------

    def ensure_trainer_version(self, id: str) -> None:
        try:
            with self.engine.begin() as conn:
                if not db.exists(conn, trainer_versions, trainer_versions.c.id == id):
                    conn.execute(trainer_versions.insert().values(id=id, created_at=time.time()))
        except IntegrityError:
            pass  # another server sharing the database inserted it first

    def trainer_versions(self) -> list[tuple[str, float]]:
        """(id, created_at) of every engine version this server has run, newest first."""
        c = trainer_versions.c
        query = sa.select(c.id, c.created_at).order_by(c.created_at.desc())
        with self.engine.begin() as conn:
            return [(r.id, r.created_at) for r in conn.execute(query)]

    def webhook_secret(self, token_id: str, make: str) -> str:
        """The token's signing secret; `make` is stored if it has none yet."""
        query = sa.select(webhook_secrets.c.secret).where(webhook_secrets.c.token_id == token_id)
        try:
            with self.engine.begin() as conn:
                found = conn.execute(query).scalar()
                if found is not None:
                    return str(found)
                conn.execute(webhook_secrets.insert().values(token_id=token_id, secret=make))
            return make
        except IntegrityError:  # another server sharing the database stored one first
            with self.engine.begin() as conn:
                return str(conn.execute(query).scalar_one())
