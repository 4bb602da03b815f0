"""Shared test set-up: offline, every cache in a per-session temp dir, shared fixtures."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="musicgen-ft-tests-"))
# No test reaches a model hub, and none writes into the user's caches.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = str(_SESSION_TMP / "hf")
os.environ["HF_HUB_CACHE"] = str(_SESSION_TMP / "hf" / "hub")
os.environ["MUSICGEN_FT_MODELS"] = str(_SESSION_TMP / "models")
os.environ["MUSICGEN_FT_CACHE"] = str(_SESSION_TMP / "cache")
os.environ["TORCH_HOME"] = str(_SESSION_TMP / "torch")
os.environ.setdefault("USER", "musicgen-ft-tests")


@pytest.fixture(scope="session")
def session_tmp() -> Path:
    return _SESSION_TMP


@pytest.fixture(scope="session")
def debug_model_dir() -> Path:
    """The `debug` base model, built once per session in the released format."""
    from musicgen_ft.variants import get_variant
    from musicgen_ft.weights import resolve_base_model

    return resolve_base_model(get_variant("debug"))


@pytest.fixture(scope="session")
def example_archive(session_tmp: Path) -> Path:
    """A dataset zip: chords and tones, .txt captions, one nested folder (12 s per file)."""
    from make_example_dataset import write_dataset

    return write_dataset(session_tmp / "data" / "example_dataset.zip", seconds=12.0)


@pytest.fixture(scope="session")
def trained(session_tmp: Path, example_archive: Path) -> Iterator[Path]:
    """One real fine-tune of `debug` through Cog's `train()`, shared by several tests.

    Every stage runs: vocal removal with a tiny random HTDemucs saved in Demucs's format where
    `download-weights htdemucs` puts the real one, Essentia's key/BPM labels, training, export.
    """
    from audio_fixtures import make_tiny_demucs
    from cog import Path as CogPath

    import train as cog_train

    # Same layout as the published htdemucs: signature 955717e8, file `<sig>-<sha256[:8]>.th`.
    staging = session_tmp / "tiny_demucs"
    sig = make_tiny_demucs(staging, "tiny")
    [weights] = staging.glob(f"{sig}-*.th")
    demucs_dir = Path(os.environ["MUSICGEN_FT_MODELS"]) / "demucs"
    demucs_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, demucs_dir / weights.name.replace(sig, "955717e8"))

    output = cog_train.train(
        dataset_path=CogPath(example_archive),
        model_version="debug",
        auto_labeling=True,
        drop_vocals=True,
        demucs_model="htdemucs",
        labels_file=None,
        one_same_description=None,
        epochs=1,
        updates_per_epoch=3,
        batch_size=2,
        optimizer="adamw",
        lr=1e-3,
        lr_scheduler="cosine",
        warmup=8,
        cfg_p=0.3,
        seed=2036,
        sample_prompts=2,
        sample_duration=1.0,
        allow_private_urls=False,
    )
    yield Path(output.weights)
