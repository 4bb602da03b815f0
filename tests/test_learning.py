"""The learning check, on CPU: a fine-tune learns two kinds of music and which words go with each.

The `debug` model is fine-tuned through the whole pipeline on two clearly different kinds of
audio with different captions: a low hum (a 110 Hz tone and its octave, slowly swelling) and
gated noise. Afterwards, on held-out audio of each kind (never trained on):

- the held-out loss of each kind, under its own description, fell versus the base model;
- clips generated for each description are closer to their own kind than to the other.

Feature space: the distribution (histogram) of first-codebook tokens of the base model's own
EnCodec, compared with the total-variation distance. The generated clips' tokens are the LM's
own (no decode/re-encode round trip). Training disabled (lr 1e-9 instead of 3e-3, everything
else equal) fails both checks: see the closing note of the stop that added this test.

Three pairs of kinds; how each was used, and what the fresh one showed, is written at `PAIRS`.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

RATE = 32000
SECONDS = 8.0


def _hum(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * RATE)) / RATE
    freq = 110.0 * rng.choice([1.0, 1.0595])
    swell = 0.7 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t)
    wav = np.sin(2 * np.pi * freq * t) + 0.5 * np.sin(4 * np.pi * freq * t + rng.uniform(0, 6))
    wav *= swell
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


def _noise(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * RATE)) / RATE
    gate = 0.5 + 0.5 * (np.sin(2 * np.pi * rng.uniform(2.0, 4.0) * t) > 0)
    wav = rng.standard_normal(t.size) * gate
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


def _plucks(seed: int) -> np.ndarray:
    """Bright plucked notes (a pentatonic scale, 600-1400 Hz, fast decay), 4 a second."""
    rng = np.random.default_rng(seed)
    n = int(SECONDS * RATE)
    wav = np.zeros(n)
    step = RATE // 4
    t = np.arange(step) / RATE
    for start in range(0, n - step + 1, step):
        freq = 600.0 * 2 ** (rng.choice([0, 2, 4, 7, 9, 12, 14]) / 12)
        note = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(6 * np.pi * freq * t)
        wav[start : start + step] = note * np.exp(-t * 18.0)
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


def _pulse(seed: int) -> np.ndarray:
    """A steady low drum: a sine swept 150 -> 45 Hz, decaying, twice a second."""
    rng = np.random.default_rng(seed)
    n = int(SECONDS * RATE)
    wav = np.zeros(n)
    step = int(RATE / rng.uniform(1.8, 2.2))
    t = np.arange(step) / RATE
    sweep = 45.0 + 105.0 * np.exp(-t * 30.0)
    hit = np.sin(2 * np.pi * np.cumsum(sweep) / RATE) * np.exp(-t * 9.0)
    for start in range(0, n - step + 1, step):
        wav[start : start + step] = hit
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


def _chord(seed: int) -> np.ndarray:
    """A sustained chord of three sawtooth-like voices (200-500 Hz) with a slow vibrato."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * RATE)) / RATE
    root = 200.0 * 2 ** (rng.integers(0, 5) / 12)
    wav = np.zeros_like(t)
    for ratio in (1.0, 1.26, 1.5):
        phase = 2 * np.pi * root * ratio * (t + 0.002 * np.sin(2 * np.pi * 5.0 * t))
        wav += sum(np.sin(k * phase) / k for k in range(1, 6))
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


def _ticks(seed: int) -> np.ndarray:
    """Fast ticking hats: 15 ms bursts of high-passed noise, 8 a second."""
    rng = np.random.default_rng(seed)
    n = int(SECONDS * RATE)
    wav = np.zeros(n)
    burst = int(0.015 * RATE)
    for start in range(0, n - burst, RATE // 8):
        noise = rng.standard_normal(burst + 1)
        wav[start : start + burst] = np.diff(noise) * np.exp(-np.arange(burst) / (burst / 4))
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


MAKERS = {
    "hum": _hum, "noise": _noise, "plucks": _plucks, "pulse": _pulse, "chord": _chord,
    "ticks": _ticks,
}  # fmt: skip
# The check's settings were chosen on the first pair (2 epochs). The second, written after them,
# failed at 2 epochs (clips asked for plucks were nearer the drum: TV 0.475 own vs 0.422 other)
# and passes at 4, so it is development data too and the check now trains 4 epochs. The third,
# written before its one run at 4 epochs, fails: the fine-tune learned the hats (held-out CE
# 0.98 vs 4.72 base) but not the chord (4.22 vs 4.56), its held-out loss is the same under
# either description (4.22 / 4.19), and both prompts give hat-like clips (TV to the hats 0.08-0.12,
# to the chord 0.88-0.92). The tiny `debug` model, in 100 updates, does not always learn what
# its descriptions mean; the strict xfail records it.
PAIRS = {
    "hum-noise": {"hum": "a low warm hum", "noise": "bursts of harsh noise"},
    "plucks-pulse": {"plucks": "bright plucked melody", "pulse": "a steady low drum pulse"},
    "chord-ticks": {"chord": "a sustained string chord", "ticks": "fast ticking hi-hats"},
}


def _histogram(codes: torch.Tensor, card: int) -> torch.Tensor:
    counts = torch.bincount(codes.flatten(), minlength=card).float()
    return counts / counts.sum()


def _tv(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


def _prepared_codes(compression: Any, audio: np.ndarray, work: Path, name: str) -> torch.Tensor:
    """Codes of held-out audio after the job's own preparation (loudness, resampling)."""
    from preprocessing.audio import PrepSettings, prepare_file

    source = work / f"{name}.wav"
    sf.write(source, audio, RATE)
    prepared = prepare_file(source, source.name, work / "prepared", PrepSettings(RATE, 1))
    [(_, _, _, chunk)] = prepared.chunks
    wav, _ = sf.read(chunk, dtype="float32")
    with torch.no_grad():
        codes, _ = compression.encode(torch.from_numpy(wav)[None, None])
    return codes


def _held_out_ce(model: Any, codes: torch.Tensor, text: str) -> float:
    """The LM's cross-entropy (all codebooks, valid pattern positions) on one clip's codes."""
    from audiocraft.modules.conditioners import ConditioningAttributes

    lm = model.lm
    attributes = [ConditioningAttributes(text={"description": text})]
    with torch.no_grad():
        conditions = lm.condition_provider(lm.condition_provider.tokenize(attributes))
        out = lm.compute_predictions(codes, [], conditions)
    mask = out.mask[None].expand_as(codes) if out.mask.dim() == 2 else out.mask
    logits = out.logits[mask]
    return float(torch.nn.functional.cross_entropy(logits.float(), codes[mask]))


@pytest.mark.slow
@pytest.mark.parametrize(
    "pair",
    [
        "hum-noise",
        "plucks-pulse",
        pytest.param(
            "chord-ticks",
            marks=pytest.mark.xfail(
                strict=True,
                reason="fresh pair: debug model learns the hats, ignores the chord's description",
            ),
        ),
    ],
)
def test_a_fine_tune_learns_each_kind_and_its_description(pair: str, tmp_path: Path) -> None:
    from inference.generate import generate_with_tokens
    from inference.loading import load_model
    from inference.params import GenerateParams
    from musicgen_ft.inputs import TrainInputs
    from musicgen_ft.pipeline import run_job

    kinds = PAIRS[pair]
    data = tmp_path / "data"
    data.mkdir()
    for kind, text in kinds.items():
        for n in range(4):
            sf.write(data / f"{kind}_{n}.wav", MAKERS[kind](n), RATE)
            (data / f"{kind}_{n}.txt").write_text(text)
    inputs = TrainInputs(
        dataset_path=str(data), model_version="debug", drop_vocals=False, auto_labeling=False,
        epochs=4, updates_per_epoch=25, batch_size=4, optimizer="adamw", lr=3e-3,
        sample_prompts=0,
    )  # fmt: skip
    result = run_job(inputs, tmp_path / "run")
    assert result.tar_path is not None

    tuned = load_model(str(result.tar_path), device="cpu")
    base = load_model(model_version="debug", device="cpu").model
    compression = base.compression_model
    card = compression.cardinality

    held = {  # never trained on
        kind: [_prepared_codes(compression, make(s), tmp_path, f"{kind}{s}") for s in (100, 101)]
        for kind, make in MAKERS.items()
        if kind in kinds
    }
    profile = {k: _histogram(torch.cat([c[:, 0] for c in v]), card) for k, v in held.items()}
    first, second = kinds
    assert _tv(profile[first], profile[second]) > 0.3  # the kinds differ in this space

    for kind, text in kinds.items():
        tuned_ce = np.mean([_held_out_ce(tuned.model, c, text) for c in held[kind]])
        base_ce = np.mean([_held_out_ce(base, c, text) for c in held[kind]])
        assert tuned_ce < 0.9 * base_ce, (kind, tuned_ce, base_ce)

    other = {first: second, second: first}
    for kind, text in kinds.items():
        own, away = [], []
        for seed in (0, 1, 2):
            params = GenerateParams(prompt=text, duration=4.0, seed=seed)
            _, tokens = generate_with_tokens(tuned, params)
            clip = _histogram(tokens[:, 0], card)
            own.append(_tv(clip, profile[kind]))
            away.append(_tv(clip, profile[other[kind]]))
        assert np.mean(own) < np.mean(away), (kind, own, away)

    with tarfile.open(result.tar_path) as tar:
        assert "quality.json" in tar.getnames()
