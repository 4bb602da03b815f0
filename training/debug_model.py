"""Build the `debug` base model: a tiny random MusicGen in the released checkpoint format.

The two files are exactly what Meta publishes for `facebook/musicgen-*`:
`state_dict.bin` (LM) and `compression_state_dict.bin` (EnCodec), each a dict with
`best_state`, `xp.cfg` (the Hydra config as a YAML string), `version` and `exported`. So
`MusicGen.get_pretrained(dir)` and the MusicGen solver's `//pretrained/<dir>` load them through
the same code as the real checkpoints. Building is deterministic (fixed seed, fixed config).
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from musicgen_ft.atomic import atomic_write_bytes_from
from musicgen_ft.variants import COMPRESSION_FILE, LM_FILE, VARIANTS
from training.hydra_config import compose_config

SEED = 1234

# EnCodec-style model: SEANet with 4 filters and strides 10*8*16 = 1280 (25 frames/s at 32 kHz),
# RVQ with 4 codebooks of 64 entries, no k-means init (it needs data).
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
    if lm_path.exists() and comp_path.exists():
        return out_dir

    torch.manual_seed(SEED)
    comp_cfg = compose_config(COMPRESSION_OVERRIDES)
    compression = builders.get_compression_model(comp_cfg)
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
    return out_dir
