"""Generate music with a loaded model and write it to a file."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.loading import LoadedModel
from musicgen_ft.errors import InputError

logger = logging.getLogger(__name__)

NORMALIZATION = ("loudness", "clip", "peak", "rms")
FORMATS = ("wav", "mp3")


@dataclass(frozen=True)
class GenerateParams:
    """Generation inputs (names as the hosted fine-tuner's predictor)."""

    prompt: str | None = None
    duration: float = 8.0
    input_audio: Path | None = None
    continuation: bool = False
    continuation_start: float = 0.0
    continuation_end: float | None = None
    top_k: int = 250
    top_p: float = 0.0
    temperature: float = 1.0
    classifier_free_guidance: float = 3.0
    seed: int | None = None
    normalization_strategy: str = "loudness"
    output_format: str = "wav"

    def validate(self, loaded: LoadedModel) -> None:
        variant = loaded.variant
        if self.duration <= 0:
            raise InputError("duration", f"duration={self.duration} must be > 0 seconds")
        if variant.max_duration and self.duration > variant.max_duration:
            raise InputError(
                "duration",
                f"{variant.name} generates at most {variant.max_duration:g} s; "
                f"got duration={self.duration:g}",
            )
        if self.normalization_strategy not in NORMALIZATION:
            raise InputError("normalization_strategy", f"choose one of {', '.join(NORMALIZATION)}")
        if self.output_format not in FORMATS:
            raise InputError("output_format", f"choose one of {', '.join(FORMATS)}")
        if self.continuation and not variant.continuation:
            raise InputError(
                "continuation", f"{variant.name} does not support continuation (melody variants)"
            )
        if self.continuation and self.input_audio is None:
            raise InputError("input_audio", "continuation needs input_audio")
        if self.temperature <= 0:
            raise InputError("temperature", "temperature must be > 0")
        if self.top_k < 0 or not 0.0 <= self.top_p <= 1.0:
            raise InputError("top_k", "top_k must be >= 0 and top_p within [0, 1]")


def _load_audio(path: Path, start: float = 0.0, end: float | None = None):  # type: ignore[no-untyped-def]
    import torch

    from preprocessing.audio import decode

    audio, sr = decode(path)
    first = int(max(0.0, start) * sr)
    last = int(end * sr) if end else audio.shape[0]
    piece = audio[first:last]
    if piece.shape[0] == 0:
        raise InputError("input_audio", f"{path.name}: nothing between {start} s and {end} s")
    return torch.from_numpy(np.ascontiguousarray(piece.T)), sr


def warn_if_prompt_is_off_vocabulary(loaded: LoadedModel, prompt: str | None) -> bool:
    """Warn when a fine-tune's prompt shares no word with its training descriptions.

    A fine-tuned style is only reached by prompts that overlap what it was trained on.
    Returns True when a warning was given.
    """
    from labeling.vocabulary import check_prompt

    vocabulary = loaded.metadata.get("vocabulary")
    if not prompt or not vocabulary:
        return False
    check = check_prompt(prompt, vocabulary)
    if not check.ok:
        logger.warning("%s", check.message)
    return not check.ok


def generate(loaded: LoadedModel, params: GenerateParams):  # type: ignore[no-untyped-def]
    """Return the generated waveform [channels, samples] (a torch tensor)."""
    import torch

    params.validate(loaded)
    warn_if_prompt_is_off_vocabulary(loaded, params.prompt)
    model = loaded.model
    card = loaded.variant.card
    top_k = params.top_k
    if top_k > card:
        logger.warning("top_k=%d exceeds the codebook size %d; using %d", top_k, card, card)
        top_k = card
    if params.seed is not None:
        random.seed(params.seed)
        np.random.seed(params.seed % 2**32)
        torch.manual_seed(params.seed)
    model.set_generation_params(
        duration=params.duration,
        top_k=top_k,
        top_p=params.top_p,
        temperature=params.temperature,
        cfg_coef=params.classifier_free_guidance,
    )
    descriptions = [params.prompt or None]
    if params.input_audio is not None and params.continuation:
        prompt_wav, sr = _load_audio(
            params.input_audio, params.continuation_start, params.continuation_end
        )
        wav = model.generate_continuation(prompt_wav[None], sr, descriptions, progress=False)
    elif params.input_audio is not None and loaded.variant.melody:
        melody, sr = _load_audio(params.input_audio)
        wav = model.generate_with_chroma(descriptions, melody[None], sr, progress=False)
    elif params.input_audio is not None:
        raise InputError(
            "input_audio",
            f"{loaded.variant.name} uses input_audio only with continuation=true",
        )
    else:
        wav = model.generate(descriptions, progress=False)
    return wav[0].detach().cpu()


def write_audio(wav, sample_rate: int, output: Path, fmt: str, strategy: str) -> Path:  # type: ignore[no-untyped-def]
    """Write with AudioCraft's writer (FFmpeg). Loudness uses pyloudnorm (fast on CPU)."""
    import torch
    from audiocraft.data.audio import audio_write

    from preprocessing.loudness import loudness_gain_db

    normalize = True
    if strategy == "loudness":
        array = wav.numpy().T.astype(np.float32)
        gain = loudness_gain_db(array, sample_rate, target_lufs=-14.0, peak_dbfs=-1.0)
        if gain is not None:
            array = array * np.float32(10 ** (gain / 20))
        wav = torch.from_numpy(np.ascontiguousarray(array.T))
        normalize = False
    output.parent.mkdir(parents=True, exist_ok=True)
    stem = output.with_suffix("") if output.suffix.lstrip(".") == fmt else output
    written = audio_write(
        str(stem),
        wav,
        sample_rate,
        format=fmt,
        normalize=normalize,
        strategy=strategy if normalize else "peak",
        add_suffix=True,
    )
    return Path(written)
