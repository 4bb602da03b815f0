"""Replicate's predictions API: run a fine-tuned version or a base variant.

POST /v1/predictions (`version`: a version id of yours or of a base model),
POST /v1/models/{owner}/{name}/predictions (its latest version), GET /v1/predictions[/{id}],
POST /v1/predictions/{id}/cancel, and the output audio at /v1/predictions/{id}/output/<file>.
`Prefer: wait[=N]` holds the create request until the prediction ends (N seconds, 1 to 60).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

import sqlalchemy as sa
from fastapi import APIRouter, Header, Request
from fastapi.responses import FileResponse
from pydantic import Field

from musicgen_ft.errors import InputError
from musicgen_ft.variants import Variant, get_variant
from serving import base_models, prediction_inputs
from serving import predictions as pfiles
from serving.config import ServerConfig
from serving.db import versions
from serving.edge import ApiError, TokenId
from serving.files import FileStore
from serving.ids import new_training_id
from serving.predict_runner import PredictionRunner, note
from serving.predictions import PredictionRow, PredictionStore
from serving.requests import WebhookFields, invalid
from serving.results import Results
from serving.store import ACTIVE, Store
from serving.validation import FieldError, InvalidInputError
from serving.webhooks import WebhookHub

MAX_WAIT_S = 60
Prefer = Annotated[str, Header()]


class CreatePredictionRequest(WebhookFields):
    """Body of POST /v1/predictions (and of a model's predictions, without `version`)."""

    version: str | None = Field(default=None, max_length=300)
    input: dict[str, Any] = Field(default_factory=dict)
    stream: bool | None = None  # accepted; output is one file, there is nothing to stream


class Deps(Protocol):
    """What the routes need of the server's services (serving.app.Services)."""

    config: ServerConfig
    store: Store
    files: FileStore
    results: Results
    predictions: PredictionStore
    runner: PredictionRunner
    prediction_hub: WebhookHub

    def base_url(self, request: Request | None = None) -> str: ...

    def file_bases(self, request: Request) -> tuple[str, ...]: ...

    def prediction_json(
        self, row: PredictionRow, base: str, *, logs: bool = True
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Target:
    """What a prediction runs: a model, its version, and the weights the predictor loads."""

    model: str
    version: str
    weights_path: str | None
    variant: Variant


def wait_seconds(prefer: str | None) -> float | None:
    """The wait an RFC 7240 `Prefer` header asks for (`wait`: 60 s); None when none."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip().strip('"')
        if not value:
            return MAX_WAIT_S
        if not value.isdigit() or not 1 <= int(value) <= MAX_WAIT_S:
            raise ApiError(
                400, "Bad request", f"Prefer: wait=N takes whole seconds from 1 to {MAX_WAIT_S}."
            )
        return float(value)
    return None


def router(s: Deps) -> APIRouter:
    api = APIRouter()

    def not_found(what: str) -> ApiError:
        return ApiError(404, "Not found", f"{what} was not found.")

    def fine_tuned(owner: str, name: str, version: str, weights: str) -> Target:
        index = s.results.index(Path(weights))
        if index is None:
            raise ApiError(410, "Gone", f"The weights of {owner}/{name}:{version} are gone.")
        try:
            variant = get_variant(str(index.metadata.get("model_version") or ""))
        except InputError:
            raise ApiError(
                422, "Version not runnable", f"{weights} does not say which base model it tunes."
            ) from None
        return Target(f"{owner}/{name}", version, weights, variant)

    def by_version(token: str, ref: str) -> Target:
        """`ref`: a version id, or `owner/name:version`."""
        version = ref.rsplit(":", 1)[-1]
        base = base_models.by_version(version)
        if base is not None:
            return Target(base.ref, base.version, None, base.variant)
        c = versions.c
        query = sa.select(c.owner, c.name, c.weights_path).where(
            c.token_id == token, c.id == version
        )
        with s.store.engine.begin() as conn:
            found = conn.execute(query).first()
        if found is None:
            raise not_found(f"Version {ref}")
        return fine_tuned(found.owner, found.name, version, found.weights_path)

    def by_model(token: str, owner: str, name: str) -> Target:
        base = base_models.by_name(owner, name)
        if base is not None:
            return Target(base.ref, base.version, None, base.variant)
        if s.store.model(token, owner, name) is None:
            raise not_found(f"Model {owner}/{name}")
        latest = s.store.versions(token, owner, name)
        if not latest:
            raise ApiError(422, "No version", f"{owner}/{name} has no version yet: train it first.")
        return fine_tuned(owner, name, latest[0].id, latest[0].weights_path)

    def create(
        target: Target, body: CreatePredictionRequest, request: Request, token: str, prefer: str
    ) -> dict[str, Any]:
        wait = wait_seconds(prefer)
        webhook, events = body.subscription(allow_private=s.config.allow_private_urls)
        bases = s.file_bases(request)
        try:
            params = prediction_inputs.validate(
                body.input,
                target.variant,
                lambda value: s.files.resolve(value, token, bases),
                allow_private_urls=s.config.allow_private_urls,
            )
        except InvalidInputError as exc:
            raise invalid(exc.errors) from None
        base = s.base_url(request)
        row = s.predictions.add(
            id=new_training_id(),
            token_id=token,
            model=target.model,
            version=target.version,
            weights_path=target.weights_path,
            variant=target.variant.name,
            input=body.input,
            params=params,
            webhook=webhook,
            webhook_events_filter=events,
            base_url=base,
        )
        s.prediction_hub.emit(row.id, "start")
        s.runner.wake()
        if wait is None:
            return s.prediction_json(row, base)
        s.runner.wait(row.id, wait)
        found = s.predictions.get(row.id)
        assert found is not None
        body_json = s.prediction_json(found, base)
        if found.status in ACTIVE:
            # As Replicate's blocking API does: a prediction not done within the wait answers
            # `starting`, which the official client's run() takes as "poll until it ends".
            body_json["status"] = "starting"
        return body_json

    @api.post("/v1/predictions", status_code=201, summary="Create a prediction")
    def create_prediction(
        body: CreatePredictionRequest,
        request: Request,
        token: TokenId,
        prefer: Prefer = "",
    ) -> dict[str, Any]:
        if not body.version:
            raise invalid(
                [FieldError("version", "is required: a version id")],
                title="Invalid request",
            )
        return create(by_version(token, body.version), body, request, token, prefer)

    @api.post(
        "/v1/models/{owner}/{name}/predictions",
        status_code=201,
        summary="Create a prediction of a model's latest version",
    )
    def create_model_prediction(
        owner: str,
        name: str,
        body: CreatePredictionRequest,
        request: Request,
        token: TokenId,
        prefer: Prefer = "",
    ) -> dict[str, Any]:
        return create(by_model(token, owner, name), body, request, token, prefer)

    @api.get("/v1/predictions", summary="List predictions, newest first")
    def list_predictions(
        request: Request, token: TokenId, cursor: str | None = None
    ) -> dict[str, Any]:
        base = s.base_url(request)
        return s.predictions.pages.page(
            token,
            cursor,
            s.config.page_size,
            f"{base}/v1/predictions",
            lambda r: s.prediction_json(_row(r), base, logs=False),
        )

    @api.get("/v1/predictions/{prediction_id}", summary="Get a prediction")
    def get_prediction(prediction_id: str, request: Request, token: TokenId) -> dict[str, Any]:
        row = s.predictions.get(prediction_id, token)
        if row is None:
            raise not_found(f"Prediction {prediction_id}")
        return s.prediction_json(row, s.base_url(request))

    @api.post("/v1/predictions/{prediction_id}/cancel", summary="Cancel a prediction")
    def cancel_prediction(prediction_id: str, request: Request, token: TokenId) -> dict[str, Any]:
        row = s.predictions.get(prediction_id, token)
        if row is None:
            raise not_found(f"Prediction {prediction_id}")
        if row.status in ACTIVE and s.predictions.finish(prediction_id, "canceled"):
            note(pfiles.log_path(s.config.data_dir, row.id), "canceled by an API request")
            s.runner.cancel(prediction_id)
            s.prediction_hub.emit(prediction_id, "completed")
        row = s.predictions.get(prediction_id, token)
        assert row is not None
        return s.prediction_json(row, s.base_url(request))

    @api.get(
        "/v1/predictions/{prediction_id}/output/{name}",
        summary="The audio a prediction generated",
        response_class=FileResponse,
    )
    def prediction_output(prediction_id: str, name: str, token: TokenId) -> FileResponse:
        row = s.predictions.get(prediction_id, token)
        path = pfiles.job_dir(s.config.data_dir, prediction_id) / name
        if row is None or row.output != name or not path.is_file():
            raise not_found(f"Output {name} of prediction {prediction_id}")
        kind = "audio/mpeg" if path.suffix == ".mp3" else "audio/wav"
        return FileResponse(path, media_type=kind, filename=name)

    return api


def _row(row: sa.Row[Any]) -> PredictionRow:
    found = pfiles.row_of(row)
    assert found is not None
    return found
