"""The FastAPI app: Replicate's trainings API over the store, the worker and the webhooks.

Handlers stay thin: check the request, call the store or the worker, shape the answer with
`render`. Every route needs a bearer token; objects of another token answer 404.
"""

from __future__ import annotations

import base64
import binascii
import re
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from musicgen_ft.constants import TAR_NAME
from musicgen_ft.net import UnsafeUrlError, check_url
from serving import jobfiles, render, trainer, web
from serving.config import ServerConfig
from serving.edge import (
    ApiError,
    BodyLimit,
    TokenAuth,
    api_error_handler,
    http_error_handler,
    validation_error_handler,
)
from serving.ids import new_training_id, token_id
from serving.sessions import Sessions, load_key
from serving.signing import new_secret
from serving.store import ACTIVE, IntegrityError, Store, TrainingRow
from serving.validation import InvalidInputError, validate_input
from serving.webhooks import EVENTS, RetryPolicy, Snapshot, WebhookHub
from serving.worker import Worker

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
Event = Literal["start", "output", "logs", "completed"]


class CreateModelRequest(BaseModel):
    """Body of POST /v1/models, as the official client sends it."""

    model_config = ConfigDict(extra="forbid")
    owner: str = Field(pattern=NAME_PATTERN)
    name: str = Field(pattern=NAME_PATTERN)
    visibility: Literal["public", "private"]
    hardware: str | None = Field(default=None, max_length=100)
    description: str | None = Field(default=None, max_length=5000)
    github_url: str | None = Field(default=None, max_length=2000)
    paper_url: str | None = Field(default=None, max_length=2000)
    license_url: str | None = Field(default=None, max_length=2000)
    cover_image_url: str | None = Field(default=None, max_length=2000)


class CreateTrainingRequest(BaseModel):
    """Body of POST .../versions/{id}/trainings."""

    model_config = ConfigDict(extra="forbid")
    destination: str = Field(max_length=201)
    input: dict[str, Any] = Field(default_factory=dict)
    webhook: str | None = Field(default=None, max_length=2000)
    webhook_completed: str | None = Field(default=None, max_length=2000)
    webhook_events_filter: list[Event] | None = None


@dataclass
class Services:
    config: ServerConfig
    store: Store
    worker: Worker
    hub: WebhookHub
    trainer_version: str

    def base_url(self, request: Request | None = None) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        assert request is not None
        return str(request.base_url).rstrip("/")

    def training_json(self, row: TrainingRow, base: str, *, logs: bool = True) -> dict[str, Any]:
        text = jobfiles.read_logs(self.config.data_dir, row.id) if logs else None
        body = render.training(row, text or "", base)
        if not logs:
            body["logs"] = None
        return body

    def snapshot(self, training_id: str) -> Snapshot | None:
        """What a webhook of this training sends now (None: it has no webhook)."""
        row = self.store.training(training_id)
        if row is None or not row.webhook:
            return None
        events = tuple(row.webhook_events_filter or EVENTS)
        secret = self.store.webhook_secret(row.token_id, new_secret())
        base = self.config.public_url.rstrip("/") if self.config.public_url else row.base_url
        return Snapshot(self.training_json(row, base), row.webhook, events, secret)

    def close(self) -> None:
        self.worker.stop()
        self.hub.close()
        self.store.close()


def build_services(config: ServerConfig) -> Services:
    """The store, the worker and the webhook sender of one process (server or worker)."""
    store = Store(config.db)
    holder: list[Services] = []
    hub = WebhookHub(
        lambda training_id: holder[0].snapshot(training_id),
        allow_private=config.allow_private_urls,
        retry=RetryPolicy(config.webhook_retry_base_s, config.webhook_max_attempts),
    )
    worker = Worker(store, config, hub.emit)
    version = trainer.version_id()
    store.ensure_trainer_version(version)
    services = Services(config, store, worker, hub, version)
    holder.append(services)
    return services


def run_worker_only(config: ServerConfig) -> None:
    """`musicgen-ft worker`: run trainings from the queue until SIGTERM or SIGINT."""
    services = build_services(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    services.worker.recover()
    services.worker.start()
    try:
        stop.wait()
    finally:
        services.close()


def create_app(config: ServerConfig) -> FastAPI:
    """The app with its worker; the worker starts (after crash recovery) with the app."""
    services = build_services(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if config.run_worker:
            services.worker.recover()
            services.worker.start()
        try:
            yield
        finally:
            services.close()

    app = FastAPI(
        title="musicgen-ft trainings API",
        description="Replicate-compatible trainings API of a self-hosted MusicGen fine-tuner.",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.services = services
    sessions = Sessions(load_key(config.data_dir), {token_id(t) for t in config.tokens})
    app.state.auth = auth = TokenAuth(config.tokens, sessions)
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.include_router(_routes(services), dependencies=[Depends(require_token)])
    web.mount(app, auth, sessions, services.store, config.data_dir)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    def openapi() -> dict[str, Any]:
        return app.openapi()

    return app


def require_token(request: Request) -> str:
    """The calling token's id (401 without a valid bearer token)."""
    auth: TokenAuth = request.app.state.auth
    return auth(request)


TokenId = Annotated[str, Depends(require_token)]


def _routes(s: Services) -> APIRouter:
    router = APIRouter()

    def not_found(what: str) -> ApiError:
        return ApiError(404, "Not found", f"{what} was not found.")

    def is_trainer(owner: str, name: str) -> bool:
        return (owner, name) == (trainer.OWNER, trainer.NAME)

    def trainer_model_json(token: str, base: str) -> dict[str, Any]:
        return render.trainer_model(
            base, s.store.trainer_versions(), s.store.count_trainings(token)
        )

    @router.get("/v1/models", summary="List models: the trainer first, then yours")
    def list_models(request: Request, token: TokenId) -> dict[str, Any]:
        base = s.base_url(request)
        results = [trainer_model_json(token, base)]
        for row in s.store.models(token):
            versions = s.store.versions(token, row.owner, row.name)
            results.append(render.destination_model(row, versions[0] if versions else None, base))
        return {"next": None, "previous": None, "results": results}

    @router.post("/v1/models", status_code=201, summary="Create a destination model")
    def create_model(body: CreateModelRequest, request: Request, token: TokenId) -> dict[str, Any]:
        if is_trainer(body.owner, body.name):
            raise ApiError(409, "Conflict", f"{body.owner}/{body.name} is the trainer itself.")
        extra = body.model_dump(exclude={"owner", "name"})
        try:
            row = s.store.add_model(token, body.owner, body.name, **extra)
        except IntegrityError:
            raise ApiError(
                409, "Conflict", f"A model {body.owner}/{body.name} already exists."
            ) from None
        return render.destination_model(row, None, s.base_url(request))

    @router.get("/v1/models/{owner}/{name}", summary="Get a model with its latest version")
    def get_model(owner: str, name: str, request: Request, token: TokenId) -> dict[str, Any]:
        base = s.base_url(request)
        if is_trainer(owner, name):
            return trainer_model_json(token, base)
        row = s.store.model(token, owner, name)
        if row is None:
            raise not_found(f"Model {owner}/{name}")
        versions = s.store.versions(token, owner, name)
        return render.destination_model(row, versions[0] if versions else None, base)

    @router.get("/v1/models/{owner}/{name}/versions", summary="List a model's versions")
    def list_versions(owner: str, name: str, token: TokenId) -> dict[str, Any]:
        if is_trainer(owner, name):
            results = [render.trainer_version(*v) for v in s.store.trainer_versions()]
        elif s.store.model(token, owner, name) is None:
            raise not_found(f"Model {owner}/{name}")
        else:
            results = [render.destination_version(v) for v in s.store.versions(token, owner, name)]
        return {"next": None, "previous": None, "results": results}

    @router.get("/v1/models/{owner}/{name}/versions/{version_id}", summary="Get a version")
    def get_version(owner: str, name: str, version_id: str, token: TokenId) -> dict[str, Any]:
        if is_trainer(owner, name):
            for id_, created in s.store.trainer_versions():
                if id_ == version_id:
                    return render.trainer_version(id_, created)
            raise not_found(f"Version {version_id} of {owner}/{name}")
        row = s.store.version(token, owner, name, version_id)
        if row is None:
            raise not_found(f"Version {version_id} of {owner}/{name}")
        return render.destination_version(row)

    @router.get(
        "/v1/models/{owner}/{name}/versions/{version_id}/weights",
        summary="Download a fine-tuned version's trained_model.tar",
        response_class=FileResponse,
    )
    def get_weights(owner: str, name: str, version_id: str, token: TokenId) -> FileResponse:
        row = s.store.version(token, owner, name, version_id)
        if row is None or not Path(row.weights_path).is_file():
            raise not_found(f"Weights of {owner}/{name}:{version_id}")
        return FileResponse(row.weights_path, media_type="application/x-tar", filename=TAR_NAME)

    @router.post(
        "/v1/models/{owner}/{name}/versions/{version_id}/trainings",
        status_code=201,
        summary="Create a training",
    )
    def create_training(
        owner: str,
        name: str,
        version_id: str,
        body: CreateTrainingRequest,
        request: Request,
        token: TokenId,
    ) -> dict[str, Any]:
        if not is_trainer(owner, name):
            raise not_found(
                f"Model {owner}/{name} (the trainer here is {trainer.OWNER}/{trainer.NAME})"
            )
        if version_id != s.trainer_version:
            known = {v for v, _ in s.store.trainer_versions()}
            if version_id not in known:
                raise not_found(f"Version {version_id} of {owner}/{name}")
            raise ApiError(
                422,
                "Version not runnable",
                f"Version {version_id} is an older engine; this server runs "
                f"{s.trainer_version}. Use the model's latest_version.",
            )
        dest_owner, _, dest_name = body.destination.partition("/")
        if s.store.model(token, dest_owner, dest_name) is None:
            raise ApiError(
                404,
                "Not found",
                f"The destination model {body.destination!r} does not exist; create it first "
                "(POST /v1/models).",
            )
        webhook, events = body.webhook, body.webhook_events_filter
        if webhook is None and body.webhook_completed is not None:
            webhook, events = body.webhook_completed, ["completed"]
        if webhook is not None:
            try:
                check_url(webhook, allow_private=s.config.allow_private_urls, field="webhook")
            except UnsafeUrlError as exc:
                raise ApiError(
                    422,
                    "Invalid request",
                    str(exc),
                    invalid_fields=[{"field": "webhook", "message": exc.message}],
                ) from None
        try:
            validate_input(body.input, allow_private_urls=s.config.allow_private_urls)
        except InvalidInputError as exc:
            raise ApiError(
                422,
                "Invalid input",
                str(exc),
                invalid_fields=[{"field": e.field, "message": e.message} for e in exc.errors],
            ) from None
        base = s.base_url(request)
        row = s.store.add_training(
            id=new_training_id(),
            token_id=token,
            model=f"{owner}/{name}",
            version=version_id,
            destination=f"{dest_owner}/{dest_name}",
            input=body.input,
            webhook=webhook,
            webhook_events_filter=None if events is None else list(dict.fromkeys(events)),
            base_url=base,
        )
        s.hub.emit(row.id, "start")
        s.worker.wake()
        return s.training_json(row, base)

    @router.get("/v1/trainings", summary="List trainings, newest first")
    def list_trainings(
        request: Request, token: TokenId, cursor: str | None = None
    ) -> dict[str, Any]:
        before, after = _parse_cursor(cursor)
        rows, _ = s.store.trainings_page(
            token, before=before, after=after, limit=s.config.page_size
        )
        base = s.base_url(request)
        page: dict[str, Any] = {"next": None, "previous": None}
        if rows and s.store.has_trainings(token, before=rows[-1].seq):
            page["next"] = f"{base}/v1/trainings?cursor={_cursor('b', rows[-1].seq)}"
        if rows and s.store.has_trainings(token, after=rows[0].seq):
            page["previous"] = f"{base}/v1/trainings?cursor={_cursor('a', rows[0].seq)}"
        page["results"] = [s.training_json(r, base, logs=False) for r in rows]
        return page

    @router.get("/v1/trainings/{training_id}", summary="Get a training")
    def get_training(training_id: str, request: Request, token: TokenId) -> dict[str, Any]:
        row = s.store.training(training_id, token)
        if row is None:
            raise not_found(f"Training {training_id}")
        return s.training_json(row, s.base_url(request))

    @router.post("/v1/trainings/{training_id}/cancel", summary="Cancel a training")
    def cancel_training(training_id: str, request: Request, token: TokenId) -> dict[str, Any]:
        row = s.store.training(training_id, token)
        if row is None:
            raise not_found(f"Training {training_id}")
        if row.status in ACTIVE and s.store.finish(training_id, "canceled"):
            s.worker.cancel(training_id)
            s.hub.emit(training_id, "completed")
        row = s.store.training(training_id, token)
        assert row is not None
        return s.training_json(row, s.base_url(request))

    @router.get("/v1/webhooks/default/secret", summary="The secret webhooks are signed with")
    def webhook_secret(token: TokenId) -> dict[str, str]:
        return {"key": s.store.webhook_secret(token, new_secret())}

    @router.get("/v1/hardware", summary="Hardware names accepted by POST /v1/models")
    def hardware() -> list[dict[str, str]]:
        return [{"name": "Local GPU", "sku": "gpu"}, {"name": "Local CPU", "sku": "cpu"}]

    return router


def _cursor(direction: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{direction}:{seq}".encode()).decode().rstrip("=")


def _parse_cursor(cursor: str | None) -> tuple[int | None, int | None]:
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
