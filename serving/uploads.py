"""Read a `multipart/form-data` upload straight to disk, never whole into memory.

POST /v1/files sends the file as the part `content` (the official client, the web page), with
optional small fields (`metadata` as JSON, `filename`, `type`). The file part is written to
`target` as it arrives, hashed on the way; small fields are kept in memory with a cap.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import anyio
from python_multipart import MultipartParser
from python_multipart.exceptions import ParseError
from python_multipart.multipart import parse_options_header

FILE_PART = "content"
MAX_FIELD_BYTES = 64 * 1024  # a small field (metadata JSON) larger than this is refused
MAX_PARTS = 16


class UploadError(Exception):
    """The upload is malformed or too large; `status` is the HTTP answer (400 or 413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Upload:
    filename: str | None = None
    content_type: str | None = None
    size: int = 0
    sha256: str = ""
    md5: str = ""
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    data: bytearray = field(default_factory=bytearray)


class _Receiver:
    """python-multipart callbacks: the file part to `out`, the other parts to memory."""

    def __init__(self, out: BinaryIO, max_bytes: int) -> None:
        self.out = out
        self.max_bytes = max_bytes
        self.upload = Upload()
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.parts = 0
        self.seen_file = False
        self._part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}

    # header callbacks
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise UploadError(400, f"The upload has more than {MAX_PARTS} parts.")
        self._part = _Part()
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        self._part.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._part.filename = None if filename is None else filename.decode("utf-8", "replace")
        kind = self._headers.get("content-type")
        self._part.content_type = kind.decode("latin-1").strip() if kind else None
        if self._part.name == FILE_PART:
            if self.seen_file:
                raise UploadError(400, f"The upload has more than one {FILE_PART!r} part.")
            self.seen_file = True
            self.upload.filename = self._part.filename
            self.upload.content_type = self._part.content_type

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._part.name != FILE_PART:
            self._part.data += chunk
            if len(self._part.data) > MAX_FIELD_BYTES:
                raise UploadError(400, f"The field {self._part.name!r} is too large.")
            return
        self.upload.size += len(chunk)
        if self.upload.size > self.max_bytes:
            raise UploadError(413, f"The file is larger than {self.max_bytes} bytes.")
        self.out.write(chunk)
        self.sha256.update(chunk)
        self.md5.update(chunk)

    def on_part_end(self) -> None:
        if self._part.name and self._part.name != FILE_PART:
            self.upload.fields[self._part.name] = self._part.data.decode("utf-8", "replace")


def boundary_of(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError(
            400,
            f"Send the file as multipart/form-data with a part named {FILE_PART!r} "
            f"(got content-type {content_type or 'none'!r}).",
        )
    return boundary


async def receive(
    stream: AsyncIterator[bytes], content_type: str, target: Path, max_bytes: int
) -> Upload:
    """Write the `content` part of a multipart body to `target`; return what was sent.

    Raises:
        UploadError: not multipart, no `content` part, a part too large, or the file over
            `max_bytes` (413). `target` may be left partly written; the caller removes it.
    """
    boundary = boundary_of(content_type)
    with target.open("wb") as out:
        receiver = _Receiver(out, max_bytes)
        callbacks = {
            name: getattr(receiver, name)
            for name in (
                "on_part_begin",
                "on_part_data",
                "on_part_end",
                "on_header_field",
                "on_header_value",
                "on_header_end",
                "on_headers_finished",
            )
        }
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        try:
            async for chunk in stream:
                # Parsing, hashing and the disk write off the event loop.
                await anyio.to_thread.run_sync(parser.write, chunk)
            parser.finalize()
        except ParseError as exc:
            raise UploadError(400, f"The multipart body is malformed: {exc}") from None
    if not receiver.seen_file:
        raise UploadError(400, f"The upload has no part named {FILE_PART!r} (the file).")
    upload = receiver.upload
    upload.sha256 = receiver.sha256.hexdigest()
    upload.md5 = receiver.md5.hexdigest()
    return upload
