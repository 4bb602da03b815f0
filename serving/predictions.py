"""The predictions table: every run of a model, and the predictor's queue.

<data_dir>/predictions/<id>/logs.txt       what the predictor said about this run
<data_dir>/predictions/<id>/output.<fmt>   the generated audio
<data_dir>/predictions/<id>/input/         an input_audio fetched from a URL

Like trainings, a prediction is claimed in one transaction (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, `BEGIN IMMEDIATE` on SQLite) by the predictor runner of one server, held by
heartbeats, and claimed again (re-run from the start: predictions are short) when its runner
went silent. Every call commits on return.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from serving import jobfiles, jobqueue
from serving.db import predictions, row_as
from serving.paging import TablePage
from serving.store import TERMINAL

TABLE = predictions


@dataclass(frozen=True)
class PredictionRow:
    seq: int
    id: str
    token_id: str
    model: str
    version: str
    weights_path: str | None
    variant: str
    input: dict[str, Any]
    params: dict[str, Any]
    status: str
    error: str | None
    output: str | None
    webhook: str | None
    webhook_events_filter: list[str] | None
    base_url: str
    created_at: float
    started_at: float | None
    completed_at: float | None
    worker_id: str | None
    heartbeat_at: float | None
    attempts: int


KIND = "predictions"  # the folder of prediction jobs in the data dir


def job_dir(data_dir: Path, id: str) -> Path:
    return jobfiles.job_dir(data_dir, id, KIND)


def log_path(data_dir: Path, id: str) -> Path:
    return jobfiles.log_path(data_dir, id, KIND)


def read_logs(data_dir: Path, id: str) -> str:
    return jobfiles.read_logs(data_dir, id, KIND)


def row_of(row: sa.Row[Any] | None) -> PredictionRow | None:
    found: PredictionRow | None = row_as(PredictionRow, row)
    return found


class PredictionStore:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self.pages = TablePage(engine, predictions)

    def add(self, **values: Any) -> PredictionRow:
        """Queue a prediction (`status` starting); `values` are its columns."""
        with self._engine.begin() as conn:
            conn.execute(
                predictions.insert().values(
                    status="starting", created_at=time.time(), attempts=0, **values
                )
            )
        row = self.get(values["id"])
        assert row is not None
        return row

    def get(self, id: str, token_id: str | None = None) -> PredictionRow | None:
        """The prediction `id`; with `token_id`, only if that token created it."""
        where = predictions.c.id == id
        if token_id is not None:
            where = sa.and_(where, predictions.c.token_id == token_id)
        with self._engine.begin() as conn:
            return row_of(conn.execute(predictions.select().where(where)).first())

    def running(self) -> list[PredictionRow]:
        query = predictions.select().where(predictions.c.status == "processing")
        with self._engine.begin() as conn:
            return [r for r in map(row_of, conn.execute(query)) if r is not None]

    def claim(self, worker_id: str, *, stale_s: float) -> PredictionRow | None:
        """Take the oldest queued prediction, or a running one whose runner is silent for
        `stale_s`, for `worker_id`: `processing`, started now (a re-run starts afresh)."""
        found = jobqueue.claim(
            self._engine,
            predictions,
            worker_id,
            stale_s=stale_s,
            started_at=time.time(),
            output=None,
        )
        return row_of(found)

    def heartbeat(self, id: str, worker_id: str) -> str | None:
        """Renew the hold; the status now (`canceled` when the API canceled it), or None when
        another runner holds it."""
        return jobqueue.heartbeat(self._engine, predictions, id, worker_id)

    def release(self, id: str, worker_id: str) -> bool:
        """Give a running prediction back to the queue, to be run again from the start."""
        c = predictions.c
        with self._engine.begin() as conn:
            result = conn.execute(
                predictions.update()
                .where(c.id == id, c.worker_id == worker_id, c.status == "processing")
                .values(status="starting", worker_id=None, heartbeat_at=None, started_at=None)
            )
        return result.rowcount == 1

    def finish(
        self, id: str, status: str, *, error: str | None = None, output: str | None = None
    ) -> bool:
        """Move an active prediction to a terminal status; False if it had already ended."""
        assert status in TERMINAL
        return jobqueue.finish(self._engine, predictions, id, status, error=error, output=output)
