"""Generate music with a loaded model and write it to a file."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np

from inference.loading import LoadedModel
from inference.params import GenerateParams
from musicgen_ft.errors import InputError

logger = logging.getLogger(__name__)


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
    model = _configure(loaded, params)
    descriptions = [params.prompt or None]
    if params.input_audio is not None and params.continuation:
        prompt_wav, sr = _load_audio(
            params.input_audio, params.continuation_start, params.continuation_end
        )
        wav = model.generate_continuation(prompt_wav[None], sr, descriptions, progress=False)
    elif params.input_audio is not None:  # a melody (check_for refused other variants)
        melody, sr = _load_audio(params.input_audio)
        wav = model.generate_with_chroma(descriptions, melody[None], sr, progress=False)
    else:
        wav = model.generate(descriptions, progress=False)
    return wav[0].detach().cpu()


def generate_with_tokens(loaded: LoadedModel, params: GenerateParams):  # type: ignore[no-untyped-def]
    """From a text prompt alone: (waveform [channels, samples], the LM's tokens [1, K, T]),
    the tokens being what the quality report measures (no decode/re-encode round trip)."""
    assert params.input_audio is None, "tokens are returned for text prompts only"
    model = _configure(loaded, params)
    wav, tokens = model.generate([params.prompt or None], progress=False, return_tokens=True)
    return wav[0].detach().cpu(), tokens.detach().cpu()


def _configure(loaded: LoadedModel, params: GenerateParams):  # type: ignore[no-untyped-def]
    """Check the params, seed every generator, set the sampling params; the MusicGen."""
    import torch

    params.check_for(loaded.variant)
    warn_if_prompt_is_off_vocabulary(loaded, params.prompt)
    model = loaded.model
    card = loaded.variant.card
    top_k = params.top_k
    if top_k > card:
        logger.warning("top_k=%d exceeds the codebook size %d; using %d", top_k, card, card)
        top_k = card
    seed = params.fixed_seed
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
    model.set_generation_params(
        duration=params.duration,
        top_k=top_k,
        top_p=params.top_p,
        temperature=params.temperature,
        cfg_coef=params.classifier_free_guidance,
    )
    return model


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
