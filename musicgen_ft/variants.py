"""The base models a fine-tune can start from: one table of specs.

Each entry says how the released checkpoint is laid out (where its weights live, which files),
what it produces (sample rate, channels) and how AudioCraft's MusicGen solver must be configured
to train it (solver config, LM scale, codebooks, conditioning). Nothing downstream branches on
variant names; it reads these fields. How many samples fit one GPU follows from the LM's
shape (training/memory.py), not from a number per variant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from musicgen_ft.errors import InputError

LM_FILE = "state_dict.bin"
COMPRESSION_FILE = "compression_state_dict.bin"


@dataclass(frozen=True)
class Variant:
    """A base MusicGen model that can be fine-tuned.

    Attributes:
        name: The `model_version` users pass.
        hf_repo: Hugging Face repository of the released checkpoint, or None for locally built
            models.
        solver: AudioCraft solver config that matches the checkpoint's training recipe.
        sample_rate: Audio sample rate of the compression model.
        channels: 1 for mono, 2 for stereo (interleaved codebooks).
        n_q: Codebooks the LM models (8 for stereo: 4 per channel, interleaved).
        card: Codebook size.
        lm_overrides: Hydra overrides that reproduce the checkpoint's LM architecture.
        text_conditioner: Hugging Face id of the T5 the conditioner loads, None when the text
            conditioner needs no download.
        melody: True when the model is also conditioned on a chroma of a melody.
        continuation: Whether audio continuation is supported at generation time.
        max_duration: Longest generation in seconds (None: unlimited, by windowing).
    """

    name: str
    hf_repo: str | None
    solver: str
    sample_rate: int
    channels: int
    n_q: int
    card: int
    lm_overrides: tuple[str, ...]
    text_conditioner: str | None = "t5-base"
    melody: bool = False
    continuation: bool = True
    max_duration: float | None = None
    notes: str = ""
    extra_files: tuple[str, ...] = field(default=())

    @property
    def stereo(self) -> bool:
        return self.channels == 2


_STEREO = (
    "interleave_stereo_codebooks.use=true",
    "transformer_lm.n_q=8",
    "codebooks_pattern.delay.delays=[0,0,1,1,2,2,3,3]",
)

_DEBUG_LM = (
    "model/lm/model_scale=debug",
    "transformer_lm.card=64",
    "conditioners.description.model=lut",
    "+conditioners.description.lut.n_bins=256",
    "+conditioners.description.lut.dim=32",
    "+conditioners.description.lut.tokenizer=noop",
)

_BASE = "musicgen/musicgen_base_32khz"
_MELODY = "musicgen/musicgen_melody_32khz"

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            name="small",
            hf_repo="facebook/musicgen-small",
            solver=_BASE,
            sample_rate=32000,
            channels=1,
            n_q=4,
            card=2048,
            lm_overrides=("model/lm/model_scale=small",),
        ),
        Variant(
            name="medium",
            hf_repo="facebook/musicgen-medium",
            solver=_BASE,
            sample_rate=32000,
            channels=1,
            n_q=4,
            card=2048,
            lm_overrides=("model/lm/model_scale=medium",),
        ),
        Variant(
            name="melody",
            hf_repo="facebook/musicgen-melody",
            solver=_MELODY,
            sample_rate=32000,
            channels=1,
            n_q=4,
            card=2048,
            lm_overrides=("model/lm/model_scale=medium",),
            melody=True,
            continuation=False,
            max_duration=30.0,
        ),
        Variant(
            name="stereo-small",
            hf_repo="facebook/musicgen-stereo-small",
            solver=_BASE,
            sample_rate=32000,
            channels=2,
            n_q=8,
            card=2048,
            lm_overrides=("model/lm/model_scale=small", *_STEREO),
        ),
        Variant(
            name="stereo-medium",
            hf_repo="facebook/musicgen-stereo-medium",
            solver=_BASE,
            sample_rate=32000,
            channels=2,
            n_q=8,
            card=2048,
            lm_overrides=("model/lm/model_scale=medium", *_STEREO),
        ),
        Variant(
            name="stereo-melody",
            hf_repo="facebook/musicgen-stereo-melody",
            solver=_MELODY,
            sample_rate=32000,
            channels=2,
            n_q=8,
            card=2048,
            lm_overrides=("model/lm/model_scale=medium", *_STEREO),
            melody=True,
            continuation=False,
            max_duration=30.0,
        ),
        Variant(
            name="debug",
            hf_repo=None,
            solver=_BASE,
            sample_rate=32000,
            channels=1,
            n_q=4,
            card=64,
            lm_overrides=_DEBUG_LM,
            text_conditioner=None,
            notes="tiny random model built locally; for tests and CPU demos",
        ),
        Variant(
            name="debug-stereo",
            hf_repo=None,
            solver=_BASE,
            sample_rate=32000,
            channels=2,
            n_q=8,
            card=64,
            lm_overrides=(*_DEBUG_LM, *_STEREO),
            text_conditioner=None,
            notes="tiny random stereo model (interleaved codebooks) built locally; for tests",
        ),
    )
}

REFUSED = {
    "large": "model_version=large is not trainable: its 3.3B-parameter LM does not fit a "
    "fine-tune on 8 x A100 80 GB. Use medium, stereo-medium or melody.",
    "stereo-large": "model_version=stereo-large is not trainable (3.3B parameters). "
    "Use stereo-medium.",
}


def get_variant(name: str) -> Variant:
    """Return the variant called `name`, or raise an InputError saying what is accepted."""
    key = name.strip().lower()
    if key.startswith("facebook/musicgen-"):
        key = key[len("facebook/musicgen-") :]
    if key in REFUSED:
        raise InputError("model_version", REFUSED[key])
    if key not in VARIANTS:
        raise InputError(
            "model_version",
            f"unknown model_version={name!r}; choose one of {', '.join(VARIANTS)}",
        )
    return VARIANTS[key]
