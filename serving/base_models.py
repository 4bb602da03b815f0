"""The base MusicGen variants as runnable models of the API: `musicgen-ft/musicgen-<variant>`.

Each has one version whose id hashes the variant's name and its released checkpoint's repo, so
the id is the same on every server and across restarts. Its schema is the predictor's: the
generation inputs (inference/params.py) in, a URL of audio out; fine-tuned versions carry the
same schema. A base model runs from the weights in this machine's cache
(`musicgen-ft download-weights`); `debug` variants are built locally.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from inference.params import GenerateParams
from musicgen_ft.schema import input_properties
from musicgen_ft.variants import VARIANTS, Variant
from serving import trainer

OWNER = trainer.OWNER
PREFIX = "musicgen-"
CREATED_AT = 1_700_000_000.0  # the listing's date of these fixed versions


@dataclass(frozen=True)
class BaseModel:
    variant: Variant
    version: str

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.variant.name}"

    @property
    def ref(self) -> str:
        return f"{OWNER}/{self.name}"


def _version_id(variant: Variant) -> str:
    return hashlib.sha256(f"musicgen-ft base {variant.name} {variant.hf_repo}".encode()).hexdigest()


ALL: tuple[BaseModel, ...] = tuple(BaseModel(v, _version_id(v)) for v in VARIANTS.values())
_BY_NAME = {m.name: m for m in ALL}
_BY_VERSION = {m.version: m for m in ALL}


def by_name(owner: str, name: str) -> BaseModel | None:
    return _BY_NAME.get(name) if owner == OWNER else None


def by_version(version_id: str) -> BaseModel | None:
    return _BY_VERSION.get(version_id)


def description(variant: Variant) -> str:
    source = variant.hf_repo or "built locally"
    return f"Base MusicGen {variant.name} ({source}), to compare with your fine-tunes."


def predictor_schema(title: str) -> dict[str, Any]:
    """The OpenAPI schema of a runnable version, in the layout Cog generates."""
    properties, required = input_properties(GenerateParams)
    return {
        "openapi": "3.0.2",
        "info": {"title": title, "version": "1"},
        "paths": {},
        "components": {
            "schemas": {
                "Input": {
                    "type": "object",
                    "title": "Input",
                    "properties": properties,
                    "required": required,
                },
                "Output": {"type": "string", "title": "Output", "format": "uri"},
            }
        },
    }
