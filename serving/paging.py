"""Cursor pagination of list endpoints, newest first, as Replicate pages them.

A page answers `{next, previous, results}`; `next` holds older objects. Cursors are opaque to
clients: `b:<seq>` (before) or `a:<seq>` (after), base64url-encoded.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from serving import db
from serving.edge import ApiError


def encode(direction: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{direction}:{seq}".encode()).decode().rstrip("=")


def parse(cursor: str | None) -> tuple[int | None, int | None]:
    """(before, after) seq bounds of a page cursor; 400 for a cursor we did not make."""
    if not cursor:
        return None, None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        match = re.fullmatch(r"([ab]):(\d{1,18})", text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        match = None
    if match is None:
        raise ApiError(400, "Bad request", "Invalid pagination cursor.")
    seq = int(match.group(2))
    return (seq, None) if match.group(1) == "b" else (None, seq)


def page(
    list_url: str,
    seqs: Sequence[int],
    exists: Callable[..., bool],
    results: list[Any],
) -> dict[str, Any]:
    """The page of `results` (whose rows have `seqs`, newest first). `exists(before=s)` /
    `exists(after=s)` say whether rows lie beyond it on either side."""
    body: dict[str, Any] = {"next": None, "previous": None}
    if seqs and exists(before=seqs[-1]):
        body["next"] = f"{list_url}?cursor={encode('b', seqs[-1])}"
    if seqs and exists(after=seqs[0]):
        body["previous"] = f"{list_url}?cursor={encode('a', seqs[0])}"
    body["results"] = results
    return body


class TablePage:
    """Pages of one token's rows of a table with `seq` and `token_id` columns."""

    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        self._engine = engine
        self._table = table

    def rows(self, token_id: str, cursor: str | None, limit: int) -> list[sa.Row[Any]]:
        before, after = parse(cursor)
        with self._engine.begin() as conn:
            rows, _ = db.page_rows(
                conn,
                self._table,
                self._table.c.token_id == token_id,
                before=before,
                after=after,
                limit=limit,
            )
        return rows

    def exists(self, token_id: str, *, before: int | None = None, after: int | None = None) -> bool:
        c = self._table.c
        where = c.token_id == token_id
        if before is not None:
            where = sa.and_(where, c.seq < before)
        if after is not None:
            where = sa.and_(where, c.seq > after)
        with self._engine.begin() as conn:
            return db.exists(conn, self._table, where)

    def page(
        self,
        token_id: str,
        cursor: str | None,
        limit: int,
        list_url: str,
        render: Callable[[sa.Row[Any]], Any],
    ) -> dict[str, Any]:
        rows = self.rows(token_id, cursor, limit)
        return page(
            list_url,
            [r.seq for r in rows],
            lambda **bound: self.exists(token_id, **bound),
            [render(r) for r in rows],
        )
