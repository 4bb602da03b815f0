"""The HTTP edge's plumbing: problem-details errors, bearer auth, the request-size limit."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.ids import token_id
from serving.sessions import COOKIE, CSRF_HEADER, Sessions

PROBLEM = "application/problem+json"


class ApiError(Exception):
    """An error answered as RFC 7807 problem details (what the official client reads)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


async def api_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return problem(exc.status, exc.title, exc.detail, exc.headers, **exc.extra)


async def http_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    titles = {404: "Not found", 405: "Method not allowed", 413: "Request too large"}
    return problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail))


async def validation_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's body validation, reworded: which field, what is wrong."""
    assert isinstance(exc, RequestValidationError)
    fields = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return problem(400, "Bad request", "The request body is not valid JSON.")
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        fields.append({"field": ".".join(loc) or "body", "message": err.get("msg", "invalid")})
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return problem(422, "Invalid request", detail, invalid_fields=fields)


class TokenAuth:
    """`Authorization: Bearer <token>` against the operator's tokens, or the web page's
    session cookie; returns the token's id."""

    def __init__(self, tokens: tuple[str, ...], sessions: Sessions | None = None) -> None:
        self._tokens = tuple(t.encode() for t in tokens)
        self._sessions = sessions

    def check(self, token: str) -> str | None:
        """The id of `token` if it is one of the server's (constant-time), else None."""
        given = token.strip().encode()
        if not given or not any(hmac.compare_digest(given, t) for t in self._tokens):
            return None
        return token_id(given.decode())

    def __call__(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        cookie = request.cookies.get(COOKIE)
        if not header and cookie and self._sessions is not None:
            return self._from_session(request, cookie)
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token.strip():
            raise ApiError(
                401,
                "Unauthorized",
                "Missing bearer token: send 'Authorization: Bearer <token>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = self.check(token)
        if found is None:
            raise ApiError(
                401, "Unauthorized", "Invalid token.", headers={"WWW-Authenticate": "Bearer"}
            )
        return found

    def _from_session(self, request: Request, cookie: str) -> str:
        assert self._sessions is not None
        found = self._sessions.verify(cookie)
        if found is None:
            raise ApiError(401, "Unauthorized", "The session has ended: sign in again.")
        if request.method not in ("GET", "HEAD") and CSRF_HEADER not in request.headers:
            raise ApiError(
                403, "Forbidden", f"A request with a session cookie must send {CSRF_HEADER}."
            )
        return found


def require_token(request: Request) -> str:
    """The calling token's id (401 without a valid bearer token or session)."""
    auth: TokenAuth = request.app.state.auth
    return auth(request)


TokenId = Annotated[str, Depends(require_token)]


class BodyLimit:
    """ASGI middleware answering 413 to bodies over `limit` bytes, declared or streamed.

    `routes` gives some paths a limit of their own (uploads check their size as they stream
    to disk, so their limit here is only a backstop)."""

    def __init__(self, app: ASGIApp, limit: int, routes: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default = limit
        self.routes = dict(routes or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get(scope.get("path", ""), self.default)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(413, f"The request body is larger than {limit} bytes.")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Request too large",
                "status": 413,
                "detail": f"The request body is larger than {limit} bytes.",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(StarletteHTTPException):
    """Raised while the body streams in; FastAPI passes HTTP exceptions to the handler."""
