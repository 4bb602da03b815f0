"""The quality report: its measures on known inputs, and the memorisation check end to end on
a run overfitted to one short track."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import torch

from evaluation import quality


def test_kernel_distance_is_near_zero_for_one_distribution_and_grows_with_a_shift() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    same = quality.kad(a, b)
    shifted = quality.kad(a, b + 1.0)
    assert abs(same) < 0.01 < shifted
    assert quality.kad(a, b + 2.0) > shifted


def test_aligned_share_finds_a_copy_at_any_offset() -> None:
    g = torch.Generator().manual_seed(1)
    chunk = torch.randint(0, 64, (300,), generator=g).tolist()
    assert quality.aligned_share(chunk[100:160], chunk) == 1.0
    other = torch.randint(0, 64, (60,), generator=g).tolist()
    assert quality.aligned_share(other, chunk) < 0.15
    noisy = [t if i % 4 else (t + 1) % 64 for i, t in enumerate(chunk[40:100])]
    assert quality.aligned_share(noisy, chunk) == pytest.approx(0.75)


def test_memorisation_is_judged_against_the_base_clip() -> None:
    chunk = quality.Encoded([list(range(50))], torch.zeros(1, 1))
    copy = quality.Encoded([list(range(10, 40))], torch.zeros(1, 1))
    novel = quality.Encoded([[7] * 30], torch.zeros(1, 1))
    assert quality.memorisation("a", copy, novel, {"c": chunk}).flagged
    # a base clip that matches as much: the data is just repetitive, not memorised
    assert not quality.memorisation("b", copy, copy, {"c": chunk}).flagged
    assert not quality.memorisation("c", novel, novel, {"c": chunk}).flagged


def test_best_epoch_is_the_lowest_held_out_loss() -> None:
    history = [{"valid": {"ce": 3.0}}, {"valid": {"ce": 2.5}}, {"valid": {"ce": 2.7}}]
    assert quality.best_epoch(history) == {"epoch": 2, "valid_ce": 2.5, "of": 3}
    assert quality.best_epoch([{"train": {"ce": 1.0}}]) is None


@pytest.mark.slow
def test_a_run_overfitted_on_one_short_track_is_flagged(tmp_path: Path) -> None:
    """One 8 s track, 100 updates at a high learning rate: held-out CE near zero, and the
    generated clips follow the track's tokens (a different track and prompt from the run the
    threshold was set on)."""
    import soundfile as sf
    from audio_fixtures import music

    from musicgen_ft.inputs import TrainInputs
    from musicgen_ft.pipeline import run_job

    track = tmp_path / "only_song.wav"
    sf.write(track, music(8.0, sr=32000, seed=5), 32000)
    inputs = TrainInputs(
        dataset_path=str(track), model_version="debug", drop_vocals=False, auto_labeling=False,
        one_same_description="the only song I have", epochs=4, updates_per_epoch=25,
        batch_size=2, optimizer="adamw", lr=1e-2, sample_prompts=2, sample_duration=4,
    )  # fmt: skip
    result = run_job(inputs, tmp_path / "run")
    assert result.tar_path is not None
    with tarfile.open(result.tar_path) as tar:
        report = json.loads(tar.extractfile("quality.json").read())  # type: ignore[union-attr]
    memo = report["memorisation"]
    assert memo["flagged"], memo
    for clip in memo["clips"]:
        assert clip["overlap"] >= 2 * clip["base_overlap"]
    assert "WARNING: a clip repeats a training chunk" in result.metadata["quality"]["summary"]
    assert report["best_epoch"]["valid_ce"] < 0.5
