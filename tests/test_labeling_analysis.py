"""Real Essentia key/tempo estimation on generated chords and grooves in known keys and tempi."""

from __future__ import annotations

import numpy as np
import pytest
from labeling_audio import drums, progression

from labeling import analysis


@pytest.mark.parametrize(
    ("tonic", "mode", "degrees"),
    [
        ("D", "major", (0, 3, 4, 0)),  # I IV V I
        ("G", "major", (5, 3, 0, 4)),  # vi IV I V: starts away from the tonic
        ("A", "minor", (0, 3, 4, 0)),  # i iv V i
        ("F#", "minor", (5, 6, 0, 0)),  # VI VII i i: starts away from the tonic
    ],
)
def test_key_and_mode_of_chord_progressions(tonic: str, mode: str, degrees: tuple[int, ...]):
    est = analysis.estimate_key(progression(tonic, mode, degrees))
    assert est is not None
    assert (est.key, est.scale) == (tonic, mode)
    assert 0.3 < est.strength <= 1.0


@pytest.mark.parametrize("bpm", [90.0, 128.0])
def test_tempo_of_drum_grooves(bpm: float):
    est = analysis.estimate_tempo(drums(bpm))
    assert est is not None
    assert est.bpm == pytest.approx(bpm, rel=0.04)
    assert 0.0 < est.confidence <= 1.0


def test_slow_groove_with_eighth_hats_is_not_doubled():
    # The tracker locks on the eighth-note hats (132); kick and bass mark the beat (66).
    est = analysis.estimate_tempo(drums(66.0, seconds=24.0))
    assert est is not None
    assert est.tracked_bpm == pytest.approx(132.0, rel=0.04)
    assert est.octave == "halved"
    assert est.bpm == pytest.approx(66.0, rel=0.04)


def test_click_track_tempo():
    est = analysis.estimate_tempo(drums(100.0, pattern="clicks"))
    assert est is not None and est.bpm == pytest.approx(100.0, rel=0.04)


def test_silence_and_short_audio_give_no_labels():
    silence = np.zeros(analysis.ANALYSIS_SR * 10, np.float32)
    assert analysis.estimate_key(silence) is None
    assert analysis.estimate_tempo(silence) is None
    short = drums(120.0, seconds=1.0)
    assert analysis.estimate_tempo(short) is None
