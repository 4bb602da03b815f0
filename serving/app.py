"""The FastAPI app: Replicate's trainings API over the store, the worker and the webhooks,
with the predictions (routes_predictions) and files (routes_files) APIs beside it.

Handlers stay thin: check the request, call the store or the worker, shape the answer with
`render`. Every route needs a bearer token; objects of another token answer 404.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from musicgen_ft.constants import TAR_NAME
from serving import (
    base_models,
    db,
    files,
    jobfiles,
    label_jobs,
    predictions,
    render,
    results,
    routes_files,
    routes_predictions,
    trainer,
    web,
)
from serving.config import ServerConfig
from serving.edge import (
    ApiError,
    BodyLimit,
    TokenAuth,
    TokenId,
    api_error_handler,
    http_error_handler,
    require_token,
    validation_error_handler,
)
from serving.files import FileStore, UnknownFileError
from serving.ids import new_training_id, token_id
from serving.label_jobs import LabelJobs
from serving.predict_runner import PredictionRunner
from serving.predictions import PredictionRow, PredictionStore
from serving.requests import WebhookFields, invalid
from serving.results import Results
from serving.sessions import Sessions, load_key
from serving.signing import new_secret
from serving.store import ACTIVE, IntegrityError, Store, TrainingRow
from serving.validation import URL_INPUTS, FieldError, InvalidInputError, validate_input
from serving.webhooks import EVENTS, RetryPolicy, Snapshot, WebhookHub
from serving.worker import Worker

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
UPLOAD_OVERHEAD = 1 << 20  # multipart framing and small fields beside an upload


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


class CreateTrainingRequest(WebhookFields):
    """Body of POST .../versions/{id}/trainings."""

    destination: str = Field(max_length=201)
    input: dict[str, Any] = Field(default_factory=dict)


@dataclass
class Services:
    config: ServerConfig
    store: Store
    worker: Worker
    hub: WebhookHub
    trainer_version: str
    files: FileStore
    results: Results
    predictions: PredictionStore
    runner: PredictionRunner
    prediction_hub: WebhookHub

    def base_url(self, request: Request | None = None) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        assert request is not None
        return str(request.base_url).rstrip("/")

    def file_bases(self, request: Request) -> tuple[str, ...]:
        """The bases under which this server's file URLs are recognised in inputs."""
        return tuple({self.base_url(request), str(request.base_url).rstrip("/")})

    def training_json(self, row: TrainingRow, base: str, *, logs: bool = True) -> dict[str, Any]:
        text = jobfiles.read_logs(self.config.data_dir, row.id) if logs else None
        shown = replace(row, input=files.public_input(self.files, row.input, base))
        body = render.training(shown, text or "", base, self.results.output_of(row, base))
        if not logs:
            body["logs"] = None
        return body

    def prediction_json(
        self, row: PredictionRow, base: str, *, logs: bool = True
    ) -> dict[str, Any]:
        text = predictions.read_logs(self.config.data_dir, row.id) if logs else None
        return render.prediction(row, text, base)

    def _snapshot(
        self, row: TrainingRow | PredictionRow, json_of: Callable[[Any, str], dict[str, Any]]
    ) -> Snapshot | None:
        if not row.webhook:
            return None
        events = tuple(row.webhook_events_filter or EVENTS)
        secret = self.store.webhook_secret(row.token_id, new_secret())
        base = self.config.public_url.rstrip("/") if self.config.public_url else row.base_url
        return Snapshot(json_of(row, base), row.webhook, events, secret)

    def snapshot(self, training_id: str) -> Snapshot | None:
        """What a webhook of this training sends now (None: it has no webhook)."""
        row = self.store.training(training_id)
        return None if row is None else self._snapshot(row, self.training_json)

    def prediction_snapshot(self, prediction_id: str) -> Snapshot | None:
        row = self.predictions.get(prediction_id)
        return None if row is None else self._snapshot(row, self.prediction_json)

    def start_workers(self) -> None:
        """Run trainings and predictions from the queue (after crash recovery)."""
        self.worker.recover()
        self.worker.start()
        self.runner.recover()
        self.runner.start()

    def close(self) -> None:
        self.worker.stop()
        self.runner.stop()
        self.hub.close()
        self.prediction_hub.close()
        self.store.close()


def build_services(config: ServerConfig) -> Services:
    """The store, the worker, the predictor and the webhook senders of one process."""
    store = Store(config.db)
    holder: list[Services] = []
    retry = RetryPolicy(config.webhook_retry_base_s, config.webhook_max_attempts)
    hub = WebhookHub(
        lambda training_id: holder[0].snapshot(training_id),
        allow_private=config.allow_private_urls,
        retry=retry,
    )
    prediction_hub = WebhookHub(
        lambda prediction_id: holder[0].prediction_snapshot(prediction_id),
        allow_private=config.allow_private_urls,
        retry=retry,
    )
    worker = Worker(store, config, hub.emit)
    version = trainer.version_id()
    store.ensure_trainer_version(version)
    prediction_store = PredictionStore(store.engine)
    services = Services(
        config,
        store,
        worker,
        hub,
        version,
        files=FileStore(store.engine, config.data_dir, config.max_file_bytes),
        results=Results(config.data_dir),
        predictions=prediction_store,
        runner=PredictionRunner(prediction_store, config, prediction_hub.emit),
        prediction_hub=prediction_hub,
    )
    holder.append(services)
    return services


def run_worker_only(config: ServerConfig) -> None:
    """`musicgen-ft worker`: run trainings and predictions from the queue until SIGTERM or
    SIGINT."""
    services = build_services(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    services.start_workers()
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
            services.start_workers()
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
    app.add_middleware(
        BodyLimit,
        limit=config.max_body_bytes,
        routes={"/v1/files": config.max_file_bytes + UPLOAD_OVERHEAD},
    )
    app.include_router(_routes(services), dependencies=[Depends(require_token)])

    def resolve_upload(value: str, token: str, request: Request) -> Path | None:
        try:
            return services.files.resolve(value, token, services.file_bases(request))
        except UnknownFileError:
            return None

    for router in (
        routes_files.router(services),
        routes_predictions.router(services),
        results.router(services.store, services.results),
        label_jobs.router(LabelJobs(config.data_dir), resolve_upload),
    ):
        app.include_router(router, dependencies=[Depends(require_token)])
    web.mount(app, auth, sessions, services.store, config.data_dir)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    def openapi() -> dict[str, Any]:
        return app.openapi()

    return app


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
        results += [render.base_model(m, base) for m in base_models.ALL]
        for row in s.store.models(token):
            versions = s.store.versions(token, row.owner, row.name)
            results.append(render.destination_model(row, versions[0] if versions else None, base))
        return {"next": None, "previous": None, "results": results}

    @router.post("/v1/models", status_code=201, summary="Create a destination model")
    def create_model(body: CreateModelRequest, request: Request, token: TokenId) -> dict[str, Any]:
        if is_trainer(body.owner, body.name):
            raise ApiError(409, "Conflict", f"{body.owner}/{body.name} is the trainer itself.")
        if base_models.by_name(body.owner, body.name):
            raise ApiError(409, "Conflict", f"{body.owner}/{body.name} is a base model.")
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
        if found := base_models.by_name(owner, name):
            return render.base_model(found, base)
        row = s.store.model(token, owner, name)
        if row is None:
            raise not_found(f"Model {owner}/{name}")
        versions = s.store.versions(token, owner, name)
        return render.destination_model(row, versions[0] if versions else None, base)

    @router.get("/v1/models/{owner}/{name}/versions", summary="List a model's versions")
    def list_versions(owner: str, name: str, token: TokenId) -> dict[str, Any]:
        if is_trainer(owner, name):
            results = [render.trainer_version(*v) for v in s.store.trainer_versions()]
        elif found := base_models.by_name(owner, name):
            results = [render.base_version(found)]
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
        if found := base_models.by_name(owner, name):
            if found.version != version_id:
                raise not_found(f"Version {version_id} of {owner}/{name}")
            return render.base_version(found)
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
        webhook, events = body.subscription(allow_private=s.config.allow_private_urls)
        # Inputs naming this server's uploads are read from the stored files.
        local, unknown = files.resolve_inputs(
            s.files, body.input, URL_INPUTS, token, s.file_bases(request)
        )
        if unknown:
            raise invalid([FieldError(f"input.{name}", why) for name, why in unknown])
        try:
            validate_input(body.input, allow_private_urls=s.config.allow_private_urls, local=local)
        except InvalidInputError as exc:
            raise invalid(exc.errors) from None
        base = s.base_url(request)
        row = s.store.add_training(
            id=new_training_id(),
            token_id=token,
            model=f"{owner}/{name}",
            version=version_id,
            destination=f"{dest_owner}/{dest_name}",
            input={**body.input, **local},
            webhook=webhook,
            webhook_events_filter=events,
            base_url=base,
        )
        s.hub.emit(row.id, "start")
        s.worker.wake()
        return s.training_json(row, base)

    @router.get("/v1/trainings", summary="List trainings, newest first")
    def list_trainings(
        request: Request, token: TokenId, cursor: str | None = None
    ) -> dict[str, Any]:
        base = s.base_url(request)
        return s.store.training_pages.page(
            token,
            cursor,
            s.config.page_size,
            f"{base}/v1/trainings",
            lambda r: s.training_json(db.row_as(TrainingRow, r), base, logs=False),
        )

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
