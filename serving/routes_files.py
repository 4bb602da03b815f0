"""Replicate's files API: upload a file to use as an input, list, get, download, delete.

POST /v1/files takes `multipart/form-data` with the file as the part `content` (what the
official client's `files.create` and its `open(path, "rb")` inputs send), streamed to disk up
to `--max_file_bytes`. Files are their token's only; another token's answer is 404.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.requests import ClientDisconnect

from serving import render
from serving.config import ServerConfig
from serving.edge import ApiError, TokenId
from serving.files import FileStore
from serving.uploads import UploadError


class Deps(Protocol):
    config: ServerConfig
    files: FileStore

    def base_url(self, request: Request | None = None) -> str: ...


def router(s: Deps) -> APIRouter:
    api = APIRouter()

    def not_found(id: str) -> ApiError:
        return ApiError(404, "Not found", f"File {id} was not found.")

    @api.post("/v1/files", status_code=201, summary="Upload a file (multipart, part `content`)")
    async def create_file(request: Request, token: TokenId) -> dict[str, Any]:
        try:
            row = await s.files.receive(token, request)
        except UploadError as exc:
            title = "Request too large" if exc.status == 413 else "Bad request"
            raise ApiError(exc.status, title, exc.message) from None
        except ClientDisconnect:
            raise ApiError(400, "Bad request", "The upload was cut off.") from None
        return render.file(row, s.base_url(request))

    @api.get("/v1/files", summary="List your files, newest first")
    def list_files(request: Request, token: TokenId, cursor: str | None = None) -> dict[str, Any]:
        base = s.base_url(request)
        return s.files.pages.page(
            token,
            cursor,
            s.config.page_size,
            f"{base}/v1/files",
            lambda r: render.file(s.files.from_row(r), base),
        )

    @api.get("/v1/files/{file_id}", summary="Get a file's details")
    def get_file(file_id: str, request: Request, token: TokenId) -> dict[str, Any]:
        row = s.files.get(file_id, token)
        if row is None:
            raise not_found(file_id)
        return render.file(row, s.base_url(request))

    @api.get(
        "/v1/files/{file_id}/download",
        summary="Download a file's content",
        response_class=FileResponse,
    )
    def download_file(file_id: str, token: TokenId) -> FileResponse:
        row = s.files.get(file_id, token)
        if row is None or not s.files.path(row).is_file():
            raise not_found(file_id)
        return FileResponse(s.files.path(row), media_type=row.content_type, filename=row.name)

    @api.delete("/v1/files/{file_id}", status_code=204, summary="Delete a file")
    def delete_file(file_id: str, token: TokenId) -> Response:
        if not s.files.delete(file_id, token):
            raise not_found(file_id)
        return Response(status_code=204)

    return api
