"""Integrated loudness (ITU-R BS.1770-4, through pyloudnorm) and normalization with a ceiling.

pyloudnorm is the maintained BS.1770 implementation; on 3 min of 44.1 kHz stereo it measured
0.51 s here, against 0.46 s for the vectorized implementation this module used to hold and
700 s for `torchaudio.functional.loudness` (its compiled `lfilter` does not load beside the
torch build this project installs, so it falls back to a Python loop).
"""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm

# pyloudnorm's gating block (400 ms): shorter audio has no integrated loudness.
BLOCK_SECONDS = 0.4


def integrated_loudness(audio: np.ndarray, rate: int) -> float:
    """Integrated loudness of `audio` [frames, channels] in LUFS (-inf when all gated out)."""
    if audio.shape[0] < round(BLOCK_SECONDS * rate) + 1:
        return -math.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(pyloudnorm.Meter(rate).integrated_loudness(audio.astype(np.float64)))
    return value if math.isfinite(value) else -math.inf


def loudness_gain_db(
    audio: np.ndarray, rate: int, target_lufs: float, peak_dbfs: float
) -> float | None:
    """The gain that brings `audio` to `target_lufs`, lowered so the sample peak stays at or below
    `peak_dbfs`. None when the audio is silent (nothing passes the absolute gate)."""
    measured = integrated_loudness(audio, rate)
    if not math.isfinite(measured):
        return None
    gain = target_lufs - measured
    peak = float(np.max(np.abs(audio)))
    if peak > 0:
        gain = min(gain, peak_dbfs - 20 * math.log10(peak))
    return gain
