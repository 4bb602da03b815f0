"""Queue operations on a job table (`id, seq, status, worker_id, heartbeat_at, attempts`).

A job is queued as `starting`, claimed into `processing` by one worker in one transaction
(`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), held by that
worker's heartbeats, and claimed again by another once they stop for `stale_s`.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

ACTIVE = ("starting", "processing")


def claim(
    engine: sa.Engine, table: sa.Table, worker_id: str, *, stale_s: float, **values: Any
) -> sa.Row[Any] | None:
    """Take the oldest queued job, or a running one whose worker is silent for `stale_s` (or
    released), for `worker_id`: `processing`, a fresh heartbeat, attempts + 1, and `values`
    (column updates). None when there is none."""
    now = time.time()
    c = table.c
    orphaned = sa.and_(
        c.status == "processing",
        sa.or_(c.heartbeat_at.is_(None), c.heartbeat_at < now - stale_s),
    )
    query = (
        sa.select(c.id)
        .where(sa.or_(c.status == "starting", orphaned))
        .order_by(c.seq)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    with engine.begin() as conn:
        found = conn.execute(query).scalar()
        if found is None:
            return None
        conn.execute(
            table.update()
            .where(c.id == found)
            .values(
                status="processing",
                worker_id=worker_id,
                heartbeat_at=now,
                attempts=c.attempts + 1,
                **values,
            )
        )
        return conn.execute(table.select().where(c.id == found)).first()


def heartbeat(engine: sa.Engine, table: sa.Table, id: str, worker_id: str) -> str | None:
    """Renew `worker_id`'s hold on job `id`; its status now (e.g. `canceled`), or None when
    the job is no longer held by this worker."""
    c = table.c
    with engine.begin() as conn:
        conn.execute(
            table.update()
            .where(c.id == id, c.worker_id == worker_id, c.status == "processing")
            .values(heartbeat_at=time.time())
        )
        found = conn.execute(sa.select(c.status, c.worker_id).where(c.id == id)).first()
    if found is None or found.worker_id != worker_id:
        return None
    return str(found.status)


def finish(engine: sa.Engine, table: sa.Table, id: str, status: str, **values: Any) -> bool:
    """Move an active job to terminal `status` with `values`; False if it had already ended."""
    c = table.c
    with engine.begin() as conn:
        result = conn.execute(
            table.update()
            .where(c.id == id, c.status.in_(ACTIVE))
            .values(status=status, completed_at=time.time(), heartbeat_at=None, **values)
        )
    return result.rowcount == 1
