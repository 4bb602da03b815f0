"""The web page at `/`: static files shipped in the package, a sign-in that turns a token into
a session cookie, and a training's progress for the page to draw. Everything else the page
does goes through the same API the official client uses."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from serving import jobfiles
from serving.edge import ApiError, TokenAuth
from serving.progress import read_progress
from serving.sessions import COOKIE, LIFETIME_S, Sessions
from serving.store import Store

STATIC = Path(__file__).resolve().parent / "static"
# The page loads nothing from elsewhere: no fonts, no CDNs, no inline script.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)


def _token(request: Request) -> str:
    auth: TokenAuth = request.app.state.auth
    return auth(request)


TokenId = Annotated[str, Depends(_token)]


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=4096)


def mount(app: FastAPI, auth: TokenAuth, sessions: Sessions, store: Store, data_dir: Path) -> None:
    """Add the page and its routes to `app`."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": CSP})

    app.mount("/ui/static", StaticFiles(directory=STATIC), name="static")

    router = APIRouter()

    @router.post("/ui/session", status_code=204, summary="Sign in: a token becomes a cookie")
    def sign_in(body: SignIn, request: Request, response: Response) -> None:
        found = auth.check(body.token)
        if found is None:
            raise ApiError(401, "Unauthorized", "Invalid token.")
        response.set_cookie(
            COOKIE,
            sessions.issue(found),
            max_age=LIFETIME_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    @router.delete("/ui/session", status_code=204, summary="Sign out")
    def sign_out(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/")

    @router.get("/ui/whoami", summary="Whether this browser is signed in")
    def whoami(token: TokenId) -> dict[str, str]:
        return {"token_id": token[:12]}

    @router.get(
        "/v1/trainings/{training_id}/progress",
        summary="A training's stage, steps done of the total, ETA and losses so far",
    )
    def progress(training_id: str, token: TokenId) -> dict[str, Any]:
        row = store.training(training_id, token)
        if row is None:
            raise ApiError(404, "Not found", f"Training {training_id} was not found.")
        logs = jobfiles.read_logs(data_dir, row.id) or ""
        return {"status": row.status, **read_progress(logs, row.input).as_json()}

    @router.get(
        "/v1/trainings/{training_id}/report",
        summary="The dataset report of a finished training: files used and rejected, minutes",
    )
    def report(training_id: str, token: TokenId) -> dict[str, Any]:
        row = store.training(training_id, token)
        if row is None or row.output_version is None:
            raise ApiError(404, "Not found", f"No finished training {training_id}.")
        owner, name = row.destination.split("/", 1)
        version = store.version(token, owner, name, row.output_version)
        if version is None:
            raise ApiError(404, "Not found", f"The version of training {training_id} is gone.")
        dataset = read_metadata(Path(version.weights_path)).get("dataset", {})
        return {
            "files_used": len(dataset.get("files_used", [])),
            "files": dataset.get("files_used", []),
            "rejected": [
                {"file": r.get("path", ""), "reason": r.get("reason", "")}
                for r in dataset.get("files_rejected", [])
            ],
            "minutes": dataset.get("minutes"),
            "chunks": dataset.get("chunks"),
            "vocal_removal": dataset.get("vocal_removal"),
            "labeling": dataset.get("labeling"),
        }

    app.include_router(router)


def read_metadata(tar_path: Path) -> dict[str, Any]:
    """`metadata.json` of a trained_model.tar, read without extracting the tar."""
    with tarfile.open(tar_path) as tar:
        member = tar.extractfile("metadata.json")
        if member is None:
            return {}
        data: dict[str, Any] = json.load(member)
    return data
