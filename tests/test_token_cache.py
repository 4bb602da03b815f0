"""Token cache: each chunk is encoded once, and training from its codes is training as before.

The unit test compares the cache with what AudioCraft's own MusicDataset hands the solver; the
solver runs (tiny `debug` model, CPU) compare the per-update losses and the final weights of a
run that encodes every batch with a run that fills the cache and a re-run that only reads it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from solver_support import SEGMENT, UPDATES, train, write_dataset

from training.token_cache import (
    CODES_FILE,
    Segment,
    TokenCache,
    enabled,
    manifest_paths,
    model_fingerprint,
)


@pytest.fixture(scope="module")
def egs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("token-cache-data"))


def _compression(model_dir: Path) -> Any:
    from audiocraft.models import MusicGen

    return MusicGen.get_pretrained(str(model_dir), device="cpu").compression_model


def test_cached_codes_equal_the_codes_of_the_datasets_own_segments(
    egs_dir: Path, debug_model_dir: Path, tmp_path: Path
) -> None:
    from audiocraft.data.music_dataset import MusicDataset

    compression = _compression(debug_model_dir)
    segment = Segment(SEGMENT, compression.sample_rate, compression.channels)
    paths = manifest_paths(egs_dir / "train", egs_dir / "valid")
    cache = TokenCache(tmp_path, model_fingerprint(compression), segment)

    def encode(audio: torch.Tensor) -> torch.Tensor:
        return compression.encode(audio)[0]

    first = cache.prepare(paths, encode)
    assert (first.chunks, first.encoded, first.cached) == (len(paths), len(paths), 0)
    assert cache.load(paths) == len(paths)

    # The segments the solver trains on, from AudioCraft's dataset as the solver builds it.
    dataset = MusicDataset.from_meta(
        str(egs_dir / "train"),
        segment_duration=SEGMENT,
        min_segment_ratio=1.0,
        sample_rate=compression.sample_rate,
        channels=compression.channels,
        num_samples=12,
        return_info=True,
        pad=True,
    )
    seen = set()
    for index in range(len(dataset)):
        audio, info = dataset[index]
        cached = cache.lookup([info])
        assert cached is not None, info.meta.path
        with torch.no_grad():
            fresh = compression.encode(audio[None])[0]
        assert torch.equal(cached, fresh), info.meta.path
        seen.add(info.meta.path)
    assert len(seen) >= 3  # several different chunks, of different lengths

    again = TokenCache(tmp_path, model_fingerprint(compression), segment).prepare(paths, encode)
    assert (again.encoded, again.cached) == (0, len(paths))
    # Another compression model is another key: nothing is reused.
    with torch.no_grad():
        next(compression.parameters()).add_(1e-3)
    other = TokenCache(tmp_path, model_fingerprint(compression), segment).prepare(paths, encode)
    assert (other.encoded, other.cached) == (len(paths), 0)


def test_the_cache_is_on_unless_turned_off() -> None:
    assert enabled({}) and enabled({"MUSICGEN_FT_TOKEN_CACHE": "1"})
    assert not enabled({"MUSICGEN_FT_TOKEN_CACHE": "0"})
    assert not enabled({"MUSICGEN_FT_TOKEN_CACHE": "off"})


def _corrupt(cache_root: Path) -> int:
    """Shift every cached code by one (entries are read-only: replace the files)."""
    files = list((cache_root / "tokens").glob(f"*/{CODES_FILE}"))
    for file in files:
        codes = np.load(file)
        file.unlink()
        np.save(file, ((codes.astype(np.int64) + 1) % 64).astype(np.int16))
    return len(files)


@pytest.mark.slow
def test_training_from_the_token_cache_is_training_from_the_audio(
    egs_dir: Path, debug_model_dir: Path, tmp_path: Path
) -> None:
    chunks = len(manifest_paths(egs_dir / "train", egs_dir / "valid"))
    cache = tmp_path / "cache"
    p_run = train(egs_dir, debug_model_dir, tmp_path / "plain", epochs=1)
    f_run = train(egs_dir, debug_model_dir, tmp_path / "filled", token_cache=cache, epochs=1)
    # A re-run (another job, same chunks and base model) reads the cache, with accumulation.
    r_run = train(
        egs_dir, debug_model_dir, tmp_path / "reread", micro=2, token_cache=cache, epochs=1
    )
    plain, plain_weights, plain_log = p_run.steps, p_run.weights, p_run.log
    filled, filled_weights, filled_log = f_run.steps, f_run.weights, f_run.log
    reread, reread_log = r_run.steps, r_run.log
    assert "token cache" not in plain_log
    assert f"token cache: {chunks} chunks, {chunks} encoded now by this process, 0 already" in (
        filled_log
    )
    assert f"token cache: {chunks} chunks, 0 encoded now by this process, {chunks} already" in (
        reread_log
    )
    for log in (filled_log, reread_log):
        assert "token cache: training from cached codes (the first batch's equal" in log
    assert len(plain) == len(filled) == len(reread) == UPDATES
    assert filled[0]["ce"] == plain[0]["ce"]  # the first step: identical loss
    for p, f, r in zip(plain, filled, reread, strict=True):
        assert math.isfinite(p["ce"])
        assert f["ce"] == pytest.approx(p["ce"], rel=1e-6)
        assert r["ce"] == pytest.approx(p["ce"], rel=1e-5, abs=1e-6)
    for name, weight in plain_weights.items():
        torch.testing.assert_close(filled_weights[name], weight, rtol=1e-6, atol=1e-7, msg=name)

    # Wrong codes in the cache are caught on the first batch, and the run encodes instead.
    assert _corrupt(cache) == chunks
    c_run = train(egs_dir, debug_model_dir, tmp_path / "checked", token_cache=cache, epochs=1)
    checked, checked_log = c_run.steps, c_run.log
    assert "cached codes equal on-the-fly encoding; encoding every batch instead" in checked_log
    assert [s["ce"] for s in checked] == pytest.approx([s["ce"] for s in plain], rel=1e-6)
