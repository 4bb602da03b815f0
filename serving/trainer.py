"""The fine-tuner as a model of the API: its name, its version id and its OpenAPI schema.

As on Replicate, the trainer is a model with versions. A version id pins the engine: it is a
hash of the code and config a training runs (the pipeline packages, `train.py`, `config/`), so
a changed engine shows up as a new version.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path
from typing import Any

from musicgen_ft.inputs import TrainInputs
from musicgen_ft.schema import input_properties
from serving.config import REPO_ROOT

OWNER = "musicgen-ft"
NAME = "musicgen-fine-tuner"
DESCRIPTION = "Fine-tune MusicGen on your own audio (self-hosted, Replicate-compatible)."
# Inputs only the operator decides; an API request may not set them.
OPERATOR_ONLY = frozenset({"allow_private_urls"})

_CODE = ("musicgen_ft", "preprocessing", "labeling", "training", "inference", "config")
_ENTRY_POINTS = ("train.py", "predict.py", "cog.yaml")


def engine_files(root: Path = REPO_ROOT) -> list[Path]:
    files = [root / name for name in _ENTRY_POINTS if (root / name).is_file()]
    for package in _CODE:
        base = root / package
        if base.is_dir():
            files += sorted(
                p
                for p in base.rglob("*")
                if p.is_file()
                and p.suffix in (".py", ".yaml", ".yml", ".json")
                and "__pycache__" not in p.parts
            )
    return files


def version_id(root: Path = REPO_ROOT) -> str:
    """64 hex digits hashing every engine file's path and content."""
    digest = hashlib.sha256()
    for path in engine_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def cog_version() -> str:
    try:
        return metadata.version("cog")
    except metadata.PackageNotFoundError:
        return "unknown"


def training_input_schema() -> dict[str, Any]:
    """JSON schema of the training inputs an API request may set (from the inputs table)."""
    properties, required = input_properties(TrainInputs, skip=OPERATOR_ONLY)
    return {
        "type": "object",
        "title": "TrainingInput",
        "properties": properties,
        "required": required,
    }


def openapi_schema(version: str) -> dict[str, Any]:
    """The schema a trainer version carries, in the layout Cog generates."""
    return {
        "openapi": "3.0.2",
        "info": {"title": f"{OWNER}/{NAME}", "version": version},
        "paths": {},
        "components": {
            "schemas": {
                "TrainingInput": training_input_schema(),
                "TrainingOutput": {
                    "type": "object",
                    "title": "TrainingOutput",
                    "properties": {"weights": {"type": "string", "format": "uri"}},
                    "required": ["weights"],
                },
            }
        },
    }


def destination_schema() -> dict[str, Any]:
    """The schema a fine-tuned version carries: its weights, for `predict.py`'s setup()."""
    return {
        "openapi": "3.0.2",
        "info": {"title": "Fine-tuned MusicGen", "version": "1"},
        "paths": {},
        "components": {
            "schemas": {
                "Weights": {
                    "type": "string",
                    "format": "uri",
                    "description": "trained_model.tar, loaded by predict.py's setup(weights)",
                }
            }
        },
    }
