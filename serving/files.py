"""Uploaded files (POST /v1/files): their rows, their bytes on disk, and their own URLs.

<data_dir>/files/<id>/<name>    the bytes, under the name the client gave (sanitised), so
                                that the trainer sees the archive's or audio's suffix

A file is its token's only. An input that names one of this server's file URLs
(`{base}/v1/files/{id}`, what POST /v1/files answers in `urls.get`) is resolved to the stored
file at create time: no network fetch, no private-URL switch; the trainer or the predictor
reads the local path, with the same unpack checks as any dataset.
"""

from __future__ import annotations

import json
import mimetypes
import re
import secrets
import shutil
import string
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request

from serving import uploads
from serving.db import files
from serving.paging import TablePage

_ALPHABET = string.ascii_lowercase + string.digits
_ID = re.compile(r"([a-z0-9]{26})(?:/download)?/?")


@dataclass(frozen=True)
class FileRow:
    seq: int
    id: str
    token_id: str
    name: str
    content_type: str
    size: int
    sha256: str
    md5: str
    meta: dict[str, Any]
    created_at: float


class UnknownFileError(Exception):
    """A URL in this server's file-URL form names no file of the token."""


def safe_name(given: str | None) -> str:
    """A file name fit for the disk: the last path part, plain characters, no leading dot
    or dash (the suffix is kept: the trainer reads the kind of archive from it)."""
    base = re.split(r"[\\/]", given or "")[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip(".-_")[-200:]
    return cleaned or "file"


def _row(row: sa.Row[Any] | None) -> FileRow | None:
    if row is None:
        return None
    values = row._mapping
    return FileRow(**{f.name: values[f.name] for f in fields(FileRow)})


class FileStore:
    """The files table and the folder beside it."""

    def __init__(self, engine: sa.Engine, data_dir: Path, max_bytes: int) -> None:
        self._engine = engine
        self.root = data_dir / "files"
        self.max_bytes = max_bytes
        self.pages = TablePage(engine, files)

    def path(self, row: FileRow) -> Path:
        return self.root / row.id / row.name

    async def receive(self, token_id: str, request: Request) -> FileRow:
        """Store the upload of `request` (streamed to disk) as a new file of `token_id`.

        Raises:
            uploads.UploadError: malformed, too large, or bad metadata.
        """
        id = "".join(secrets.choice(_ALPHABET) for _ in range(26))
        folder = self.root / id
        folder.mkdir(parents=True)
        partial = folder / ".upload"
        try:
            got = await uploads.receive(
                request.stream(), request.headers.get("content-type", ""), partial, self.max_bytes
            )
            meta = _metadata(got.fields.get("metadata"))
            name = safe_name(got.fields.get("filename") or got.filename)
            kind = (
                got.fields.get("type")
                or got.content_type
                or mimetypes.guess_type(name)[0]
                or "application/octet-stream"
            )
            partial.rename(folder / name)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        values = {
            "id": id,
            "token_id": token_id,
            "name": name,
            "content_type": kind[:200],
            "size": got.size,
            "sha256": got.sha256,
            "md5": got.md5,
            "meta": meta,
            "created_at": time.time(),
        }
        with self._engine.begin() as conn:
            conn.execute(files.insert().values(**values))
        row = self.get(id, token_id)
        assert row is not None
        return row

    def get(self, id: str, token_id: str) -> FileRow | None:
        query = files.select().where(files.c.id == id, files.c.token_id == token_id)
        with self._engine.begin() as conn:
            return _row(conn.execute(query).first())

    def delete(self, id: str, token_id: str) -> bool:
        with self._engine.begin() as conn:
            result = conn.execute(
                files.delete().where(files.c.id == id, files.c.token_id == token_id)
            )
        if result.rowcount != 1:
            return False
        shutil.rmtree(self.root / id, ignore_errors=True)
        return True

    def from_row(self, row: sa.Row[Any]) -> FileRow:
        found = _row(row)
        assert found is not None
        return found

    def resolve(self, value: object, token_id: str, bases: tuple[str, ...]) -> Path | None:
        """The stored file an input value names, when it is one of this server's file URLs
        (under one of `bases`); None for any other value.

        Raises:
            UnknownFileError: the URL has the form of this server's file URLs, but `token_id`
                has no such file.
        """
        if not isinstance(value, str):
            return None
        for base in bases:
            prefix = f"{base.rstrip('/')}/v1/files/"
            match = _ID.fullmatch(value[len(prefix) :]) if value.startswith(prefix) else None
            if match is not None:
                row = self.get(match.group(1), token_id)
                if row is None or not self.path(row).is_file():
                    raise UnknownFileError(f"{value} is no file of yours on this server")
                return self.path(row)
        return None


def resolve_inputs(
    store: FileStore, raw: object, names: tuple[str, ...], token_id: str, bases: tuple[str, ...]
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """({input name: local path} for the inputs of `raw` that name this server's files,
    [(input name, why)] for those that name a file the token does not have)."""
    local: dict[str, str] = {}
    unknown: list[tuple[str, str]] = []
    values = raw if isinstance(raw, dict) else {}
    for name in names:
        try:
            found = store.resolve(values.get(name), token_id, bases)
        except UnknownFileError as exc:
            unknown.append((name, str(exc)))
            continue
        if found is not None:
            local[name] = str(found)
    return local, unknown


def public_input(store: FileStore, values: dict[str, Any], base: str) -> dict[str, Any]:
    """`values` with each stored file's local path shown as its URL again."""
    shown = dict(values)
    root = f"{store.root}/"
    for name, value in values.items():
        if isinstance(value, str) and value.startswith(root):
            shown[name] = f"{base}/v1/files/{value[len(root) :].split('/', 1)[0]}"
    return shown


def _metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise uploads.UploadError(400, "The metadata field is not valid JSON.") from None
    if not isinstance(value, dict):
        raise uploads.UploadError(400, "The metadata field must be a JSON object.")
    return value
