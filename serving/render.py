"""JSON shapes of the API's objects, field for field as Replicate returns them."""

from __future__ import annotations

from typing import Any

from serving import base_models, trainer
from serving.base_models import BaseModel
from serving.files import FileRow
from serving.ids import iso
from serving.predictions import PredictionRow
from serving.store import TERMINAL, ModelRow, TrainingRow, VersionRow


def weights_url(base: str, owner: str, name: str, version_id: str) -> str:
    return f"{base}/v1/models/{owner}/{name}/versions/{version_id}/weights"


def _run_fields(row: TrainingRow | PredictionRow, url: str) -> dict[str, Any]:
    """Times, URLs and metrics of a training or prediction, as Replicate shows them."""
    metrics: dict[str, float] = {}
    if row.status in TERMINAL and row.completed_at is not None:
        if row.started_at is not None:
            metrics["predict_time"] = round(row.completed_at - row.started_at, 6)
        metrics["total_time"] = round(row.completed_at - row.created_at, 6)
    return {
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "completed_at": iso(row.completed_at),
        "urls": {"get": url, "cancel": f"{url}/cancel"},
        "metrics": metrics,
    }


def training(
    row: TrainingRow, logs: str, base: str, results: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A training; `results` (samples, curves) join its output once it succeeded."""
    output = None
    if row.output_version:
        owner, name = row.destination.split("/", 1)
        output = {
            "version": f"{row.destination}:{row.output_version}",
            "weights": weights_url(base, owner, name, row.output_version),
            **(results or {}),
        }
    return {
        "id": row.id,
        "model": row.model,
        "version": row.version,
        "destination": row.destination,
        "input": row.input,
        "source": "api",
        "status": row.status,
        "logs": logs,
        "error": row.error,
        "output": output,
        "data_removed": False,
        **_run_fields(row, f"{base}/v1/trainings/{row.id}"),
    }


def prediction_output_url(base: str, id: str, name: str) -> str:
    return f"{base}/v1/predictions/{id}/output/{name}"


def prediction(row: PredictionRow, logs: str | None, base: str) -> dict[str, Any]:
    """A prediction; its output is the URL of the generated audio."""
    output = None
    if row.status == "succeeded" and row.output:
        output = prediction_output_url(base, row.id, row.output)
    return {
        "id": row.id,
        "model": row.model,
        "version": row.version,
        "input": row.input,
        "source": "api",
        "status": row.status,
        "logs": logs,
        "error": row.error,
        "output": output,
        "data_removed": False,
        **_run_fields(row, f"{base}/v1/predictions/{row.id}"),
    }


def file(row: FileRow, base: str) -> dict[str, Any]:
    """An uploaded file, as Replicate's files API shows it."""
    return {
        "id": row.id,
        "name": row.name,
        "content_type": row.content_type,
        "size": row.size,
        "etag": row.md5,
        "checksums": {"sha256": row.sha256, "md5": row.md5},
        "metadata": row.meta,
        "created_at": iso(row.created_at),
        "expires_at": None,
        "urls": {"get": f"{base}/v1/files/{row.id}"},
    }


def version(id: str, created_at: float, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": id,
        "created_at": iso(created_at),
        "cog_version": trainer.cog_version(),
        "openapi_schema": schema,
    }


def destination_version(row: VersionRow) -> dict[str, Any]:
    """A fine-tuned version: runnable (the predictor's schema) and carrying its weights."""
    schema = base_models.predictor_schema(f"{row.owner}/{row.name}")
    schema["components"]["schemas"].update(trainer.destination_schema()["components"]["schemas"])
    return version(row.id, row.created_at, schema)


def base_version(model: BaseModel) -> dict[str, Any]:
    return version(model.version, base_models.CREATED_AT, base_models.predictor_schema(model.ref))


def base_model(model: BaseModel, base: str) -> dict[str, Any]:
    return _model(
        base_models.OWNER,
        model.name,
        base,
        description=base_models.description(model.variant),
        visibility="public",
        latest_version=base_version(model),
    )


def _model(owner: str, name: str, base: str, **fields: Any) -> dict[str, Any]:
    return {
        "url": f"{base}/v1/models/{owner}/{name}",
        "owner": owner,
        "name": name,
        "description": None,
        "visibility": "private",
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "run_count": 0,
        "cover_image_url": None,
        "default_example": None,
        "latest_version": None,
        **fields,
    }


def trainer_model(base: str, versions: list[tuple[str, float]], run_count: int) -> dict[str, Any]:
    latest = versions[0] if versions else None
    return _model(
        trainer.OWNER,
        trainer.NAME,
        base,
        description=trainer.DESCRIPTION,
        visibility="public",
        run_count=run_count,
        latest_version=None if latest is None else trainer_version(*latest),
    )


def trainer_version(id: str, created_at: float) -> dict[str, Any]:
    return version(id, created_at, trainer.openapi_schema(id))


def destination_model(row: ModelRow, latest: VersionRow | None, base: str) -> dict[str, Any]:
    return _model(
        row.owner,
        row.name,
        base,
        description=row.description,
        visibility=row.visibility,
        github_url=row.github_url,
        paper_url=row.paper_url,
        license_url=row.license_url,
        cover_image_url=row.cover_image_url,
        latest_version=None if latest is None else destination_version(latest),
    )
