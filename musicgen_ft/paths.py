"""Where things live on disk: model weights, caches, the torch hub dir. One place for each.

$MUSICGEN_FT_MODELS   base models, Demucs (demucs/), Essentia taggers (essentia/);
                      default ~/.cache/musicgen-ft/models
$MUSICGEN_FT_CACHE    caches: prep/, vocals/, finetunes/; default ~/.cache/musicgen-ft/cache
$TORCH_HOME/hub       torch hub's cache (Demucs as AudioCraft's chroma conditioner loads it)
"""

from __future__ import annotations

import os
from pathlib import Path

MODELS_ENV = "MUSICGEN_FT_MODELS"
CACHE_ENV = "MUSICGEN_FT_CACHE"
_HOME = Path.home() / ".cache" / "musicgen-ft"


def models_dir() -> Path:
    return Path(os.environ.get(MODELS_ENV) or _HOME / "models").expanduser()


def cache_root() -> Path:
    """Root of every cache; each kind of entry has its own sub-folder."""
    return Path(os.environ.get(CACHE_ENV) or _HOME / "cache").expanduser()


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser() / "hub"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "torch" / "hub"
