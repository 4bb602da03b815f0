"""The taggers: labels follow the audio, and the mel front end is Essentia's effnet input.

The stand-in models (tests/labeling_standins.py) are trained here on synthetic held notes and
percussion; these tests use other clips (other seeds, other pitches, labeling_audio's chords and
grooves). The front end is checked against Essentia's own streaming algorithms, wired as its
TensorflowPredictEffnetDiscogs wires them, and against the mel settings computed with numpy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from labeling_audio import SR, drums, held_notes, percussion, progression
from labeling_standins import (
    AUDIO_KINDS,
    CLASSES,
    EXPECTED,
    HELD_OUT_PITCHES,
    HELD_OUT_SEEDS,
    LAST_LAYER,
    PERCUSSIVE,
    TONAL,
    TRAIN_PITCHES,
    TRAIN_SEEDS,
    build_all,
    edit_last_layers,
    swap_classes,
)

from labeling import stage
from labeling.taggers import (
    KINDS,
    MEL_BANDS,
    MEL_FRAME,
    MEL_HOP,
    PATCH_FRAMES,
    PATCH_HOP,
    TAGGER_SR,
    Taggers,
)

Clip = tuple[str, str, np.ndarray]  # (name, kind of audio, 16 kHz mono)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_all(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    """Held-out clips of both kinds: none of them, and none of their notes, was trained on."""
    import soxr

    assert not set(HELD_OUT_SEEDS) & set(TRAIN_SEEDS)
    assert not set(HELD_OUT_PITCHES) & set(TRAIN_PITCHES)

    def at_16k(audio: np.ndarray) -> np.ndarray:
        return soxr.resample(audio, SR, TAGGER_SR).astype(np.float32)

    out: list[Clip] = []
    for seed in HELD_OUT_SEEDS[:3]:
        out.append(
            (f"held notes {seed}", TONAL, held_notes(seed, 6.0, TAGGER_SR, HELD_OUT_PITCHES))
        )
        out.append((f"percussion {seed}", PERCUSSIVE, percussion(seed, 6.0, TAGGER_SR)))
    out.append(("D major chords", TONAL, at_16k(progression("D", "major", (0, 3, 4, 0), bars=4))))
    out.append(("128 BPM groove", PERCUSSIVE, at_16k(drums(128.0, seconds=8.0))))
    return out


def other(audio_kind: str) -> str:
    return PERCUSSIVE if audio_kind == TONAL else TONAL


def labels_of(taggers: Taggers, audio: np.ndarray) -> dict[str, list[str]]:
    """The labels the stage keeps (default thresholds and top-k), per kind."""
    scores = taggers.tag(audio)
    settings = stage.LabelSettings()
    return {
        kind: [s.label for s in stage.select(kind, scores[kind], taggers.classes[kind], settings)]
        for kind in KINDS
    }


def check_labels(taggers: Taggers, name: str, audio: np.ndarray, audio_kind: str) -> None:
    """Every kind's top label is `audio_kind`'s class, and the other kind's class is not kept."""
    got = labels_of(taggers, audio)
    for kind in KINDS:
        assert got[kind][:1] == [EXPECTED[audio_kind][kind]], (name, kind, got)
        assert EXPECTED[other(audio_kind)][kind] not in got[kind], (name, kind, got)


def test_labels_name_the_class_of_the_audio(models: Path, clips: list[Clip]) -> None:
    taggers = Taggers(models)
    assert taggers.available == list(KINDS)
    for name, audio_kind, audio in clips:
        check_labels(taggers, name, audio, audio_kind)
    # The scores themselves, not only their order: decisive on both classes.
    for name, audio_kind, audio in clips:
        scores = taggers.tag(audio)
        for kind in KINDS:
            right, wrong = CLASSES[kind][audio_kind][0], CLASSES[kind][other(audio_kind)][0]
            assert scores[kind][right] > 0.9 and scores[kind][wrong] < 0.1, (name, kind)


def test_swapped_head_weights_swap_the_labels(
    models: Path, clips: list[Clip], tmp_path: Path
) -> None:
    """The same files with the two trained classes' last-layer weights exchanged (metadata
    untouched): every clip now gets the other class, and the check above fails on it."""
    swapped = shutil.copytree(models, tmp_path / "swapped")
    swap_classes(swapped)
    taggers = Taggers(swapped)
    for name, audio_kind, audio in clips:
        check_labels(taggers, name, audio, other(audio_kind))
        with pytest.raises(AssertionError):
            check_labels(taggers, name, audio, audio_kind)


def test_a_tagger_that_ignores_its_input_fails_the_check(
    models: Path, clips: list[Clip], tmp_path: Path
) -> None:
    """Last-layer weights zeroed (biases kept): the same scores for every input, as the
    earlier stand-ins had. The label check fails for one kind of audio or the other."""
    constant = shutil.copytree(models, tmp_path / "constant")
    weights = {w for w, _ in LAST_LAYER.values()}
    edit_last_layers(constant, lambda _kind, name, v: np.zeros_like(v) if name in weights else v)
    taggers = Taggers(constant)
    first = {kind: taggers.tag(clips[0][2])[kind] for kind in KINDS}
    failures = 0
    for name, audio_kind, audio in clips:
        scores = taggers.tag(audio)
        assert all(np.array_equal(scores[kind], first[kind]) for kind in KINDS)
        try:
            check_labels(taggers, name, audio, audio_kind)
        except AssertionError:
            failures += 1
    assert failures >= min(sum(k == kind for _, k, _ in clips) for kind in AUDIO_KINDS)


# --- the mel front end ---------------------------------------------------------------------


def known_signal(samples: int) -> np.ndarray:
    """A linear chirp from 50 Hz to 7.5 kHz plus sines at 220 Hz, 1 kHz and 3.5 kHz, 16 kHz."""
    t = np.arange(samples) / TAGGER_SR
    seconds = samples / TAGGER_SR
    chirp = 0.3 * np.sin(2 * np.pi * (50.0 * t + (7500.0 - 50.0) / (2 * seconds) * t**2))
    sines = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220.0, 1000.0, 3500.0))
    return (chirp + sines).astype(np.float32)


def essentia_effnet_input(audio: np.ndarray) -> np.ndarray:
    """The patches Essentia's TensorflowPredictEffnetDiscogs feeds its network, from its own
    streaming algorithms wired as that composite wires them: FrameCutter (512, hop 256, its
    defaults otherwise) -> TensorflowInputMusiCNN -> VectorRealToTensor (128 frames, hop 62,
    last patch discarded); TensorToVectorReal hands the patches back frame by frame."""
    import essentia
    import essentia.streaming as st

    source = st.VectorInput(np.ascontiguousarray(audio, dtype=np.float32))
    cutter = st.FrameCutter(frameSize=512, hopSize=256)
    bands = st.TensorflowInputMusiCNN()
    to_tensor = st.VectorRealToTensor(
        shape=[1, 1, 128, 96], patchHopSize=62, lastPatchMode="discard"
    )
    to_frames = st.TensorToVectorReal()
    pool = essentia.Pool()
    source.data >> cutter.signal
    cutter.frame >> bands.frame
    bands.bands >> to_tensor.frame
    to_tensor.tensor >> to_frames.tensor
    to_frames.frame >> (pool, "bands")
    essentia.run(source)
    return np.asarray(pool["bands"], dtype=np.float32).reshape(-1, 128, 96)


@pytest.mark.parametrize(
    "samples",
    [
        84800,  # 5.3 s: not a whole number of hops
        65536,  # a whole number of hops
        TAGGER_SR,  # 1 s: too short for one patch (compared padded, see below)
    ],
)
def test_front_end_matches_essentias_effnet_input(samples: int) -> None:
    audio = known_signal(samples)
    ours = Taggers(None).patches(audio)
    shortest = (PATCH_FRAMES - 1) * MEL_HOP  # Essentia gives no patch below this; we pad
    reference = essentia_effnet_input(np.pad(audio, (0, max(0, shortest - samples))))
    expected = 1 + (-(-max(samples, shortest) // MEL_HOP) + 1 - PATCH_FRAMES) // PATCH_HOP
    assert ours.shape == reference.shape == (expected, PATCH_FRAMES, MEL_BANDS)
    assert ours.dtype == np.float32
    # Same algorithm on the same frames: equal to float32 rounding (measured: identical).
    assert np.abs(ours - reference).max() <= 1e-6
    # The tolerance can tell framings apart: neighbouring frames of the chirp differ by far
    # more (the front end once started its first frame at sample 0, one hop late).
    assert np.abs(reference[:, 1:] - reference[:, :-1]).max() > 0.5


def _slaney_mel(hz: np.ndarray) -> np.ndarray:
    return np.where(
        hz < 1000.0,
        hz * 3.0 / 200.0,
        15.0 + 27.0 * np.log(np.maximum(hz, 1e-9) / 1000.0) / np.log(6.4),
    )


def _slaney_hz(mel: np.ndarray) -> np.ndarray:
    return np.where(
        mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0)
    )


def numpy_mel_bands(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stated settings, with numpy alone: frames of 512 every 256 (the first centred on
    sample 0), symmetric Hann window, power spectrum, 96 triangles of unit area evenly spaced
    on the Slaney mel scale over 0-8 kHz, log10(1 + 10000 x). Returns (frames x 96 bands,
    the bands' centre frequencies)."""
    count = -(-audio.size // MEL_HOP) + 1
    padded = np.zeros((count - 1) * MEL_HOP + MEL_FRAME)
    padded[MEL_FRAME // 2 : MEL_FRAME // 2 + audio.size] = audio
    frames = np.lib.stride_tricks.sliding_window_view(padded, MEL_FRAME)[::MEL_HOP]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(MEL_FRAME) / (MEL_FRAME - 1))
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    edges = _slaney_hz(np.linspace(0.0, _slaney_mel(np.array(TAGGER_SR / 2)), MEL_BANDS + 2))
    freqs = np.arange(MEL_FRAME // 2 + 1) * TAGGER_SR / MEL_FRAME
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising, falling = (freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)
    triangles = np.maximum(0.0, np.minimum(rising, falling)) / ((hi - lo) / 2)
    return np.log10(1.0 + 10000.0 * power @ triangles.T), edges[1:-1]


def test_front_end_computes_the_stated_mel_bands() -> None:
    audio = known_signal(84800)
    ours = Taggers(None).patches(audio)
    mel, centres = numpy_mel_bands(audio.astype(np.float64))
    reference = np.stack(
        [mel[s : s + PATCH_FRAMES] for s in range(0, mel.shape[0] - PATCH_FRAMES + 1, PATCH_HOP)]
    )
    assert ours.shape == reference.shape
    diff = np.abs(ours - reference)
    # Values span 0..5.9. Essentia designs its filters in float32: the largest difference is
    # in band 66, whose upper edge lies 0.005 bins from an FFT bin the chirp sweeps through
    # (measured: max 9.1e-4, 99th percentile 1.5e-4, median 2.2e-8). For scale: a periodic
    # instead of a symmetric Hann window is 0.06 off, frames one hop late 3.3.
    assert diff.max() <= 2e-3 and np.median(diff) <= 1e-6
    # And the frequency axis is right: a 1 kHz sine peaks in the band centred nearest 1 kHz.
    t = np.arange(TAGGER_SR * 3) / TAGGER_SR
    sine = Taggers(None).patches((0.3 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32))
    peak = int(np.argmax(sine[0, 64]))
    assert peak == int(np.argmin(np.abs(centres - 1000.0)))
