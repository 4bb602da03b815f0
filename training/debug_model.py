"""Build the `debug` base model: a tiny random MusicGen in the released checkpoint format.

The two files are exactly what Meta publishes for `facebook/musicgen-*`:
`state_dict.bin` (LM) and `compression_state_dict.bin` (EnCodec), each a dict with
`best_state`, `xp.cfg` (the Hydra config as a YAML string), `version` and `exported`. So
`MusicGen.get_pretrained(dir)` and the MusicGen solver's `//pretrained/<dir>` load them through
the same code as the real checkpoints. Building is deterministic (fixed seed, fixed config).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import OmegaConf

from musicgen_ft.atomic import atomic_write_bytes_from
from musicgen_ft.variants import COMPRESSION_FILE, LM_FILE, VARIANTS
from training.hydra_config import compose_config

SEED = 1234
# Bumped whenever the build changes, so that a cached older build is rebuilt.
BUILD = 2
BUILD_FILE = "debug_build.json"

# EnCodec-style model: SEANet with 4 filters and strides 10*8*16 = 1280 (25 frames/s at 32 kHz),
# RVQ with 4 codebooks of 64 entries. AudioCraft's k-means init needs training data; the
# codebooks are initialised here instead from encoder frames of synthetic audio (one pass of
# k-means' sampling init per stage), so that different music gets different codes. Random
# codebooks map nearly every frame to one code, which no quality measure could tell apart.
COMPRESSION_OVERRIDES = (
    "solver=compression/encodec_musicgen_32khz",
    "device=cpu",
    "seanet.n_filters=4",
    "seanet.dimension=32",
    "seanet.ratios=[10,8,16]",
    "seanet.lstm=0",
    "rvq.n_q=4",
    "rvq.bins=64",
    "rvq.kmeans_init=false",
)


def lm_overrides(name: str = "debug") -> list[str]:
    variant = VARIANTS[name]
    return [
        f"solver={variant.solver}",
        "device=cpu",
        "dtype=float32",
        "dset=audio/musicgen_ft",
        f"compression_model_checkpoint=//pretrained/{name}",
        f"channels={variant.channels}",
        *variant.lm_overrides,
    ]


def _save(pkg: dict, path: Path) -> None:
    def write(tmp: Path) -> None:
        torch.save(pkg, tmp)

    atomic_write_bytes_from(path, write)


def build_debug_model(out_dir: Path, name: str = "debug") -> Path:
    """Write the locally built base model `name` into `out_dir` (created) and return it.

    `debug` and `debug-stereo` share the same compression model (stereo interleaves the
    codebooks of two mono streams, as the released stereo models do); their LMs differ.

    Skips the work when both files exist and load (the build is deterministic).
    """
    from audiocraft import __version__ as ac_version
    from audiocraft.models import builders

    out_dir.mkdir(parents=True, exist_ok=True)
    lm_path, comp_path = out_dir / LM_FILE, out_dir / COMPRESSION_FILE
    build_file = out_dir / BUILD_FILE
    if lm_path.exists() and comp_path.exists() and _built(build_file):
        return out_dir

    torch.manual_seed(SEED)
    comp_cfg = compose_config(COMPRESSION_OVERRIDES)
    compression = builders.get_compression_model(comp_cfg)
    _init_codebooks(compression)
    _save(
        {
            "best_state": compression.state_dict(),
            "xp.cfg": OmegaConf.to_yaml(comp_cfg, resolve=False),
            "version": ac_version,
            "exported": True,
        },
        comp_path,
    )

    torch.manual_seed(SEED)
    lm_cfg = compose_config(lm_overrides(name))
    lm = builders.get_lm_model(lm_cfg)
    _save(
        {
            "best_state": lm.state_dict(),
            "xp.cfg": OmegaConf.to_yaml(lm_cfg, resolve=False),
            "version": ac_version,
            "exported": True,
        },
        lm_path,
    )
    build_file.write_text(json.dumps({"build": BUILD}))
    return out_dir


def _built(build_file: Path) -> bool:
    try:
        return bool(json.loads(build_file.read_text()).get("build") == BUILD)
    except (OSError, ValueError):
        return False


def synthetic_audio(
    count: int = 24, seconds: float = 2.0, sample_rate: int = 32000
) -> torch.Tensor:
    """[count, 1, T] of varied synthetic sounds: tones with partials and envelopes, noise."""
    g = torch.Generator().manual_seed(SEED)
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    clips = []
    for n in range(count):
        wav = torch.zeros_like(t)
        for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
            freq = float(torch.exp(torch.empty(1).uniform_(4.0, 8.3, generator=g)))
            rate = float(torch.empty(1).uniform_(0.5, 8.0, generator=g))
            envelope = 0.5 + 0.5 * torch.sin(2 * torch.pi * rate * t)
            wav += envelope * torch.sin(2 * torch.pi * freq * t)
        if n % 3 == 0:
            wav += 0.3 * torch.randn(t.shape, generator=g)
        clips.append(0.3 * wav / wav.abs().max().clamp_min(1e-6))
    return torch.stack(clips)[:, None]


def _init_codebooks(compression: torch.nn.Module) -> None:
    """Each RVQ stage's codebook := distinct encoder frames (residuals) of synthetic audio."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        residual = compression.encoder(synthetic_audio())  # type: ignore[operator]
        for layer in compression.quantizer.vq.layers:  # type: ignore[union-attr]
            frames = layer.project_in(residual.transpose(1, 2)).reshape(-1, residual.shape[1])
            book = layer._codebook
            pick = torch.randperm(len(frames), generator=g)[: book.embed.shape[0]]
            book.embed.copy_(frames[pick])
            book.embed_avg.copy_(frames[pick])
            book.cluster_size.fill_(1.0)
            book.inited.fill_(1.0)
            residual = residual - layer.decode(layer.encode(residual))
