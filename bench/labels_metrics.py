"""MIREX key weighting and the tempo accuracies (Acc1, Acc2) of the benchmark."""

from __future__ import annotations

PITCH = {
    "C": 0, "B#": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "Fb": 4, "F": 5,
    "E#": 5, "F#": 6, "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11,
    "Cb": 11,
}  # fmt: skip
TEMPO_TOLERANCE = 0.04


def mirex_key_score(ref_tonic: str, ref_mode: str, tonic: str | None, mode: str | None) -> float:
    """1 same key, 0.5 perfect fifth above, 0.3 relative, 0.2 parallel, else 0 (MIREX).

    A key without a mode is read as major (that is what the incumbent's "C" means to a reader).
    """
    if tonic is None or tonic not in PITCH:
        return 0.0
    mode = mode or "major"
    ref, est = PITCH[ref_tonic], PITCH[tonic]
    if est == ref and mode == ref_mode:
        return 1.0
    if mode == ref_mode and est == (ref + 7) % 12:
        return 0.5
    if ref_mode == "major" and mode == "minor" and est == (ref + 9) % 12:
        return 0.3
    if ref_mode == "minor" and mode == "major" and est == (ref + 3) % 12:
        return 0.3
    if est == ref and mode != ref_mode:
        return 0.2
    return 0.0


def acc1(ref_bpm: float, bpm: float | None) -> bool:
    return bpm is not None and abs(bpm - ref_bpm) <= TEMPO_TOLERANCE * ref_bpm


def acc2(ref_bpm: float, bpm: float | None) -> bool:
    """Acc1 up to the octave errors 2, 3, 1/2 and 1/3."""
    return bpm is not None and any(acc1(ref_bpm * f, bpm) for f in (1, 2, 3, 1 / 2, 1 / 3))
