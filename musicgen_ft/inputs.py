"""The inputs of a training job: one table, shared by Cog's `train()`, the CLI and the server.

Names, types and defaults follow the hosted fine-tuner (so existing clients keep working);
validation happens once, here, with messages that name the field and what is accepted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from musicgen_ft.errors import InputError
from musicgen_ft.variants import VARIANTS, get_variant

OPTIMIZERS = ("dadam", "adamw")
LR_SCHEDULERS = (
    "cosine",
    "exponential",
    "polynomial_decay",
    "inverse_sqrt",
    "linear_warmup",
    "none",
)


OPTIONAL_TEXT = ("one_same_description", "labels_file")


def _spec(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, **extra}


@dataclass(frozen=True)
class TrainInputs:
    """Inputs of one fine-tune. Field metadata carries the description and constraints."""

    dataset_path: str = field(
        metadata=_spec(
            "Dataset: a public HTTPS URL or a local path to a zip/tar/tar.gz/tgz/gz archive, "
            "a folder, or one audio file (wav, mp3, flac, ogg, opus, m4a, aiff)."
        )
    )
    model_version: str = field(
        default="stereo-melody",
        metadata=_spec(
            "Base model: small, medium, melody, stereo-small, stereo-medium, stereo-melody "
            "(debug, debug-stereo: tiny local models for tests). large is not trainable.",
            choices=tuple(VARIANTS),
        ),
    )
    auto_labeling: bool = field(
        default=True,
        metadata=_spec("Label genre, mood, instruments, key and BPM with Essentia."),
    )
    drop_vocals: bool = field(
        default=True, metadata=_spec("Remove vocals with Demucs before training.")
    )
    demucs_model: str = field(
        default="htdemucs",
        metadata=_spec("Demucs model used to remove vocals (htdemucs, htdemucs_ft, mdx_extra...)."),
    )
    labels_file: str | None = field(
        default=None,
        metadata=_spec(
            "Reviewed labels (CSV or JSONL exported with `python -m labeling.review export`) "
            "that override the automatic ones, per source file or per chunk."
        ),
    )
    one_same_description: str | None = field(
        default=None,
        metadata=_spec(
            "One description for every file (a per-file songname.txt takes precedence). "
            '"" means auto-labels only.'
        ),
    )
    epochs: int = field(default=3, metadata=_spec("Number of epochs.", ge=1, le=10000))
    updates_per_epoch: int = field(
        default=100, metadata=_spec("Optimizer updates per epoch.", ge=1, le=1_000_000)
    )
    batch_size: int = field(
        default=16,
        metadata=_spec(
            "Global batch size (30 s examples); must divide by the number of GPUs.",
            ge=1,
            le=4096,
        ),
    )
    optimizer: str = field(
        default="dadam",
        metadata=_spec("dadam (D-Adaptation, use lr=1) or adamw.", choices=OPTIMIZERS),
    )
    lr: float = field(
        default=1.0,
        metadata=_spec("Learning rate (1 for dadam; around 1e-5..1e-4 for adamw).", gt=0.0),
    )
    lr_scheduler: str = field(
        default="cosine", metadata=_spec("Learning-rate schedule.", choices=LR_SCHEDULERS)
    )
    warmup: int = field(
        default=8, metadata=_spec("Warm-up updates of the schedule.", ge=0, le=1_000_000)
    )
    cfg_p: float = field(
        default=0.3,
        metadata=_spec("Classifier-free guidance dropout of the text condition.", ge=0.0, le=1.0),
    )
    seed: int = field(default=2036, metadata=_spec("Random seed of the training run.", ge=0))
    allow_private_urls: bool = field(
        default=False,
        metadata=_spec(
            "Let dataset_path point at loopback/private addresses, plain http:// included "
            "(internal buckets, tests)."
        ),
    )

    def validate(self) -> TrainInputs:
        """Check every field; raise InputError naming the first bad one. Returns self."""
        if not isinstance(self.dataset_path, str) or not self.dataset_path.strip():
            raise InputError("dataset_path", "is required: a URL, an archive, a folder or a file")
        get_variant(self.model_version)
        for f in fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            choices = meta.get("choices")
            if choices and f.name != "model_version" and value not in choices:
                raise InputError(
                    f.name, f"{f.name}={value!r} is not one of {', '.join(map(str, choices))}"
                )
            if "ge" in meta and value < meta["ge"]:
                raise InputError(f.name, f"{f.name}={value} must be >= {meta['ge']}")
            if "le" in meta and value > meta["le"]:
                raise InputError(f.name, f"{f.name}={value} must be <= {meta['le']}")
            if "gt" in meta and value <= meta["gt"]:
                raise InputError(f.name, f"{f.name}={value} must be > {meta['gt']}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainInputs:
        """Build from a JSON-like dict, coercing types; unknown fields are an error."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InputError(
                unknown[0], f"unknown input {unknown[0]!r}; accepted: {', '.join(known)}"
            )
        values: dict[str, Any] = {}
        for name, value in data.items():
            values[name] = coerce(name, value, field_type(known[name]))
        if "dataset_path" not in values:
            raise InputError("dataset_path", "is required: a URL, an archive, a folder or a file")
        return cls(**values).validate()


def field_type(f: dataclasses.Field[Any]) -> type:
    text = str(f.type)
    for name, kind in (("bool", bool), ("int", int), ("float", float)):
        if text.startswith(name):
            return kind
    return str


def coerce(name: str, value: Any, kind: type) -> Any:
    """Coerce a CLI string or JSON value to `kind`, or raise InputError naming the field."""
    if value is None:
        if name in OPTIONAL_TEXT:
            return None
        raise InputError(name, f"{name} must not be null")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
            return False
        raise InputError(name, f"{name}={value!r} is not a boolean (true or false)")
    if kind is int:
        if isinstance(value, bool):
            raise InputError(name, f"{name}={value!r} is not an integer")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise InputError(name, f"{name}={value!r} is not an integer") from None
        if not as_float.is_integer():
            raise InputError(name, f"{name}={value!r} is not an integer")
        return int(as_float)
    if kind is float:
        if isinstance(value, bool):
            raise InputError(name, f"{name}={value!r} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(name, f"{name}={value!r} is not a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise InputError(name, f"{name}={value!r} is not a finite number")
        return number
    if not isinstance(value, str):
        raise InputError(name, f"{name} must be a string, got {type(value).__name__}")
    return value


def input_fields() -> list[dataclasses.Field[Any]]:
    return list(fields(TrainInputs))
