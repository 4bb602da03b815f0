"""The inputs of a training job: one table, shared by Cog's `train()`, the CLI and the server.

Names, types and defaults follow the hosted fine-tuner (so existing clients keep working).
Every bound, choice and description is written here once; `musicgen_ft.schema` turns the table
into Cog's signature, the command line, the API's validation and its OpenAPI schema.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from musicgen_ft import schema
from musicgen_ft.errors import InputError
from musicgen_ft.variants import VARIANTS, get_variant

Optimizer = Literal["dadam", "adamw"]
LrScheduler = Literal[
    "cosine", "exponential", "polynomial_decay", "inverse_sqrt", "linear_warmup", "none"
]
OPTIMIZERS: tuple[str, ...] = typing.get_args(Optimizer)
LR_SCHEDULERS: tuple[str, ...] = typing.get_args(LrScheduler)

# Seeds are handed to NumPy, which takes 32-bit unsigned seeds.
MAX_SEED = 2**32 - 1
# T5 reads at most 512 tokens; a description far longer is a mistake, not a style.
MAX_DESCRIPTION_CHARS = 2000
# Each listening sample is generated twice (fine-tune and base) at the end of a training.
MAX_SAMPLE_PROMPTS = 16


class TrainInputs(BaseModel):
    """Inputs of one fine-tune. Constructing one validates it (pydantic)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    dataset_path: Annotated[
        str,
        Field(
            description="Dataset: a public HTTPS URL or a local path to a zip/tar/tar.gz/tgz/gz "
            "archive, a folder, or one audio file (wav, mp3, flac, ogg, opus, m4a, aiff).",
            json_schema_extra=schema.URI_FORMAT,
        ),
    ]
    model_version: Annotated[
        str,
        Field(
            description="Base model: small, medium, melody, stereo-small, stereo-medium, "
            "stereo-melody (debug, debug-stereo: tiny local models for tests). large is not "
            "trainable.",
            json_schema_extra=schema.choices_of(VARIANTS),
        ),
    ] = "stereo-melody"
    auto_labeling: Annotated[
        bool, Field(description="Label genre, mood, instruments, key and BPM with Essentia.")
    ] = True
    drop_vocals: Annotated[
        bool, Field(description="Remove vocals with Demucs before training.")
    ] = True
    demucs_model: Annotated[
        str,
        Field(
            description="Demucs model used to remove vocals (htdemucs, htdemucs_ft, mdx_extra...).",
            max_length=64,
        ),
    ] = "htdemucs"
    labels_file: Annotated[
        str | None,
        Field(
            description="Reviewed labels (CSV or JSONL exported with `python -m labeling.review "
            "export`) that override the automatic ones, per source file or per chunk.",
            json_schema_extra=schema.URI_FORMAT,
        ),
    ] = None
    one_same_description: Annotated[
        str | None,
        Field(
            description="One description for every file (a per-file songname.txt takes "
            'precedence). "" means auto-labels only.',
            max_length=MAX_DESCRIPTION_CHARS,
        ),
    ] = None
    epochs: Annotated[int, Field(description="Number of epochs.", ge=1, le=10000)] = 3
    updates_per_epoch: Annotated[
        int, Field(description="Optimizer updates per epoch.", ge=1, le=1_000_000)
    ] = 100
    batch_size: Annotated[
        int,
        Field(
            description="Global batch size (30 s examples); must divide by the number of GPUs.",
            ge=1,
            le=4096,
        ),
    ] = 16
    optimizer: Annotated[
        Optimizer, Field(description="dadam (D-Adaptation, use lr=1) or adamw.")
    ] = "dadam"
    lr: Annotated[
        float,
        Field(
            description="Learning rate (1 for dadam; around 1e-5..1e-4 for adamw).",
            ge=1e-9,
            le=100.0,
        ),
    ] = 1.0
    lr_scheduler: Annotated[LrScheduler, Field(description="Learning-rate schedule.")] = "cosine"
    warmup: Annotated[
        int, Field(description="Warm-up updates of the schedule.", ge=0, le=1_000_000)
    ] = 8
    early_stopping: Annotated[
        int,
        Field(
            description="Stop when the held-out loss has not improved for this many epochs "
            "(0: train every epoch). The result is always the best epoch's weights.",
            ge=0,
            le=10000,
        ),
    ] = 0
    lora_rank: Annotated[
        int,
        Field(
            description="LoRA: train rank-r adapters of the transformer's attention and "
            "feed-forward weights instead of every weight (0: full fine-tune). The result holds "
            "the merged weights and the adapter. Usually wants a higher lr (adamw 1e-4..1e-3).",
            ge=0,
            le=1024,
        ),
    ] = 0
    cfg_p: Annotated[
        float,
        Field(
            description="Classifier-free guidance dropout of the text condition.", ge=0.0, le=1.0
        ),
    ] = 0.3
    seed: Annotated[
        int, Field(description="Random seed of the training run.", ge=0, le=MAX_SEED)
    ] = 2036
    sample_prompts: Annotated[
        int,
        Field(
            description="Listening samples in the result: this many prompts (training "
            "descriptions, then suggested prompts), each generated by the fine-tune and by the "
            "base model with a fixed seed. 0: none.",
            ge=0,
            le=MAX_SAMPLE_PROMPTS,
        ),
    ] = 4
    sample_duration: Annotated[
        float,
        Field(description="Length of each listening sample, in seconds.", ge=1.0, le=30.0),
    ] = 10.0
    allow_private_urls: Annotated[
        bool,
        Field(
            description="Let dataset_path point at loopback/private addresses, plain http:// "
            "included (internal buckets, tests)."
        ),
    ] = False

    @field_validator("dataset_path")
    @classmethod
    def _dataset_path_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("dataset_path is required: a URL, an archive, a folder or a file")
        return value

    @field_validator("model_version")
    @classmethod
    def _trainable_variant(cls, value: str) -> str:
        try:
            return get_variant(value).name
        except InputError as exc:
            raise ValueError(exc.message) from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainInputs:
        """Build from a JSON-like or command-line dict; raise InputError naming the field."""
        if "dataset_path" not in data:
            raise InputError("dataset_path", "is required: a URL, an archive, a folder or a file")
        return schema.parse(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()
