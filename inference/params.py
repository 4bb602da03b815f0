"""The inputs of a generation: one table, shared by Cog's `predict()`, the CLI and the server.

Names and defaults follow the hosted fine-tuner's predictor. Bounds and choices live here
once; `musicgen_ft.schema` builds the Cog signature and the command line from this table.
Rules that depend on the model (its longest duration, melody or not) are in `check_for`.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from musicgen_ft.errors import InputError
from musicgen_ft.inputs import MAX_SEED
from musicgen_ft.variants import Variant

Normalization = Literal["loudness", "clip", "peak", "rms"]
OutputFormat = Literal["wav", "mp3"]
NORMALIZATION: tuple[str, ...] = typing.get_args(Normalization)
FORMATS: tuple[str, ...] = typing.get_args(OutputFormat)
MAX_PROMPT_CHARS = 2000


class GenerateParams(BaseModel):
    """Generation inputs (names as the hosted fine-tuner's predictor)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    prompt: Annotated[
        str | None,
        Field(description="Describe the music to generate.", max_length=MAX_PROMPT_CHARS),
    ] = None
    input_audio: Annotated[
        Path | None,
        Field(description="Audio to continue (continuation=true) or a melody (melody variants)."),
    ] = None
    duration: Annotated[
        float, Field(description="Seconds of audio to generate.", ge=0.1, le=300.0)
    ] = 8.0
    continuation: Annotated[bool, Field(description="Continue input_audio.")] = False
    continuation_start: Annotated[
        float, Field(description="Start of the prompt in input_audio (s).", ge=0.0)
    ] = 0.0
    continuation_end: Annotated[
        float | None, Field(description="End of the prompt in input_audio (s).", ge=0.0)
    ] = None
    normalization_strategy: Annotated[Normalization, Field(description="Output normalization.")] = (
        "loudness"
    )
    top_k: Annotated[
        int, Field(description="Sample from the k most likely tokens.", ge=0, le=10000)
    ] = 250
    top_p: Annotated[float, Field(description="Nucleus sampling (0 disables).", ge=0.0, le=1.0)] = (
        0.0
    )
    temperature: Annotated[float, Field(description="Sampling temperature.", ge=0.01, le=10.0)] = (
        1.0
    )
    classifier_free_guidance: Annotated[
        float, Field(description="Guidance strength.", ge=0.0, le=100.0)
    ] = 3.0
    output_format: Annotated[OutputFormat, Field(description="wav or mp3.")] = "wav"
    seed: Annotated[
        int | None, Field(description="Random seed (-1 or empty: random).", ge=-1, le=MAX_SEED)
    ] = None

    @property
    def fixed_seed(self) -> int | None:
        """The seed to use, or None for a random one."""
        return None if self.seed is None or self.seed < 0 else self.seed

    def check_for(self, variant: Variant) -> None:
        """Rules that depend on the model; raise InputError naming the field."""
        if variant.max_duration and self.duration > variant.max_duration:
            raise InputError(
                "duration",
                f"{variant.name} generates at most {variant.max_duration:g} s; "
                f"got duration={self.duration:g}",
            )
        if self.continuation and not variant.continuation:
            raise InputError(
                "continuation", f"{variant.name} does not support continuation (melody variants)"
            )
        if self.continuation and self.input_audio is None:
            raise InputError("input_audio", "continuation needs input_audio")
        if self.input_audio is not None and not self.continuation and not variant.melody:
            raise InputError(
                "input_audio",
                f"{variant.name} uses input_audio only with continuation=true",
            )
