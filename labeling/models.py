"""Where the tagger models live. The download table is `musicgen_ft.weights.ASSETS["essentia"]`."""

from __future__ import annotations

from pathlib import Path

ESSENTIA_ASSET = "essentia"


def default_models_dir() -> Path:
    """`$MUSICGEN_FT_MODELS/essentia` (where `musicgen-ft download-weights essentia` puts them)."""
    from musicgen_ft.paths import models_dir
    from musicgen_ft.weights import ASSETS

    asset = ASSETS.get(ESSENTIA_ASSET)
    return models_dir() / (asset.dest if asset and asset.dest else ESSENTIA_ASSET)
