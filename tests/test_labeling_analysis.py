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


def _scores(chroma: analysis.KeyChroma, shaath: int, temperley: int) -> np.ndarray:
    return analysis.key_features(chroma, shaath, temperley) @ np.asarray(analysis.KEY_WEIGHTS)


def test_key_scorer_ranking_rotates_with_transposition():
    """The 24 candidates' scores of a clip transposed by n semitones are the clip's, moved by n
    (the evidence is read relative to each candidate's tonic)."""
    chroma = analysis.key_chroma(progression("D", "major", (0, 3, 4, 0)))
    d_major, a_major = analysis.key_index("D", "major"), analysis.key_index("A", "major")
    base = _scores(chroma, a_major, d_major)
    assert int(np.argmax(base)) == d_major
    for shift in (1, 5, 7):
        moved = analysis.KeyChroma(
            full=np.roll(chroma.full, shift, axis=1), bass=np.roll(chroma.bass, shift, axis=1)
        )

        def up(index: int, n: int = shift) -> int:
            return (index % 12 + n) % 12 + 12 * (index // 12)

        scores = _scores(moved, up(a_major), up(d_major))
        assert np.allclose(scores[[up(k) for k in range(24)]], base)
        assert int(np.argmax(scores)) == up(d_major)


def test_key_scorer_reads_the_key_from_the_chords():
    # No extractor votes: the chords alone. i iv V i in A minor (the V's G# is the leading tone).
    chroma = analysis.key_chroma(progression("A", "minor", (0, 3, 4, 0)))
    probs = analysis.key_probabilities(analysis.key_features(chroma, -1, -1))
    assert int(np.argmax(probs)) == analysis.key_index("A", "minor")
    assert probs.sum() == pytest.approx(1.0)
    # A vote a fifth off (A major for D major) is overruled by the chords and the second vote.
    chroma = analysis.key_chroma(progression("D", "major", (0, 3, 4, 0)))
    features = analysis.key_features(
        chroma, analysis.key_index("A", "major"), analysis.key_index("D", "major")
    )
    assert int(np.argmax(analysis.key_probabilities(features))) == analysis.key_index("D", "major")


@pytest.mark.parametrize("bpm", [90.0, 128.0])
def test_tempo_of_drum_grooves(bpm: float):
    est = analysis.estimate_tempo(drums(bpm))
    assert est is not None
    assert est.bpm == pytest.approx(bpm, rel=0.04)
    assert 0.0 < est.confidence <= 1.0


@pytest.mark.parametrize(
    ("pattern", "bpm"),
    [
        ("waltz", 90.0),  # 3/4: kick on 1, snare on 2 and 3
        ("waltz", 150.0),
        ("halftime", 128.0),  # snare on 3 only, bass on 1 and 3: not halved
        ("halftime", 150.0),
    ],
)
def test_tempo_of_waltz_and_half_time_grooves(pattern: str, bpm: float):
    est = analysis.estimate_tempo(drums(bpm, pattern=pattern))
    assert est is not None
    assert est.bpm == pytest.approx(bpm, rel=0.04)


@pytest.mark.parametrize("bpm", [66.0, 90.0])
def test_six_eight_is_counted_in_dotted_quarters(bpm: float):
    # The tracker locks on pairs of eighths (x3/2 the dotted quarter); the level chosen among
    # the candidates is the dotted quarter.
    est = analysis.estimate_tempo(drums(bpm, pattern="sixeight"))
    assert est is not None
    assert est.tracked_bpm == pytest.approx(1.5 * bpm, rel=0.04)
    assert est.octave == "x2/3"
    assert est.bpm == pytest.approx(bpm, rel=0.04)


def test_tempo_candidates_carry_confidences():
    est = analysis.estimate_tempo(drums(128.0))
    assert est is not None
    assert len(est.candidates) >= 2
    bpms = [bpm for bpm, _ in est.candidates]
    confidences = [conf for _, conf in est.candidates]
    assert bpms[0] == est.bpm and confidences[0] == est.confidence
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confidences) and sum(confidences) <= 1.0 + 1e-6
    assert any(abs(b - 64.0) < 3 or abs(b - 256.0) < 8 for b in bpms[1:])  # other octaves


def test_candidate_levels_follow_the_meter():
    """A ternary groove gets ternary candidates (a third of its eighths), a duple one its half."""
    import essentia.standard as es

    def levels(audio):
        curves = analysis.onset_curves(audio)
        ticks = es.TempoTapDegara(sampleRateODF=analysis.ODF_RATE)(curves.beat)
        return analysis.metrical_ratios(curves.beat, ticks)

    assert any(analysis._has_three(r) for r in levels(drums(66.0, pattern="sixeight")))
    duple = levels(drums(128.0))
    assert 1.0 in duple and 0.5 in duple and 2.0 in duple


def test_click_track_tempo():
    est = analysis.estimate_tempo(drums(100.0, pattern="clicks"))
    assert est is not None and est.bpm == pytest.approx(100.0, rel=0.04)


def test_silence_and_short_audio_give_no_labels():
    silence = np.zeros(analysis.ANALYSIS_SR * 10, np.float32)
    assert analysis.estimate_key(silence) is None
    assert analysis.estimate_tempo(silence) is None
    short = drums(120.0, seconds=1.0)
    assert analysis.estimate_tempo(short) is None


@pytest.mark.xfail(
    strict=True,
    reason="known regression of the candidate-scoring tempo rule (bench/README.md): a slow "
    "groove with eighth-note hats is labeled at the hats' 132 BPM, above the description threshold",
)
def test_slow_groove_with_eighth_hats_is_not_doubled():
    # The tracker locks on the eighth-note hats (132); kick and bass mark the beat (66).
    est = analysis.estimate_tempo(drums(66.0, seconds=24.0))
    assert est is not None and est.bpm == pytest.approx(66.0, rel=0.04)
