"""Synthetic audio for tests and benchmarks: tones, noise, music-like chords with drums.

Everything is generated with numpy and written with libsndfile (wav, flac, ogg, opus, mp3, aiff)
or with the ffmpeg binary (m4a/aac), so no real music has to ship with the project.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100

# Formats libsndfile writes: extension -> (format, subtype).
_SF_FORMATS: dict[str, tuple[str, str | None]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".aiff": ("AIFF", "PCM_16"),
    ".aif": ("AIFF", "PCM_16"),
}
FORMATS = (*_SF_FORMATS, ".m4a")


def tone(
    seconds: float, sr: int = SR, channels: int = 2, freq: float = 440.0, amp: float = 0.3
) -> np.ndarray:
    """A sine tone, float32 [frames, channels]."""
    t = np.arange(int(seconds * sr), dtype=np.float64) / sr
    mono = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def noise(
    seconds: float, sr: int = SR, channels: int = 2, amp: float = 0.1, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal((int(seconds * sr), channels))).astype(np.float32)


def silence(seconds: float, sr: int = SR, channels: int = 2) -> np.ndarray:
    return np.zeros((int(seconds * sr), channels), dtype=np.float32)


_CHORDS = ((0, 4, 7), (9, 12, 16), (5, 9, 12), (7, 11, 14))  # I vi IV V in semitones


def music(
    seconds: float, sr: int = SR, channels: int = 2, seed: int = 0, bpm: float = 120.0
) -> np.ndarray:
    """Music-like audio: a chord progression with harmonics, a bass line, kick and hi-hat.

    Deterministic for a given seed; different seeds give different keys and tempi.
    """
    rng = np.random.default_rng(seed)
    frames = int(seconds * sr)
    t = np.arange(frames, dtype=np.float64) / sr
    root = 110.0 * 2 ** (int(rng.integers(0, 12)) / 12)
    beat = 60.0 / (bpm + float(rng.integers(-20, 20)))
    bar = 4 * beat
    chord_index = (t // bar).astype(np.int64) % len(_CHORDS)
    out = np.zeros(frames, dtype=np.float64)
    for voice in range(3):
        semis = np.array([c[voice] for c in _CHORDS], dtype=np.float64)[chord_index]
        freq = root * 2 * 2 ** (semis / 12)
        phase = 2 * np.pi * np.cumsum(freq) / sr
        out += 0.08 * (np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase))
    bass_semis = np.array([c[0] for c in _CHORDS], dtype=np.float64)[chord_index]
    out += 0.15 * np.sin(2 * np.pi * np.cumsum(root / 2 * 2 ** (bass_semis / 12)) / sr)
    in_beat = t % beat
    out += (
        0.5
        * np.sin(2 * np.pi * (50 + 80 * np.exp(-in_beat * 30)) * in_beat)
        * np.exp(-in_beat * 12)
    )
    in_eighth = t % (beat / 2)
    hat = rng.standard_normal(frames) * np.exp(-in_eighth * 60) * 0.05
    out += np.diff(hat, prepend=0.0)  # crude high-pass
    out *= 0.7 / max(float(np.max(np.abs(out))), 1e-9)
    if channels == 1:
        return out.astype(np.float32)[:, None]
    pan = 0.1 * np.sin(2 * np.pi * 0.05 * t)
    return np.stack([out * (1 - pan), out * (1 + pan)], axis=1).astype(np.float32)


def write_audio(path: Path, audio: np.ndarray, sr: int = SR) -> Path:
    """Write `audio` [frames, channels] in the format given by `path`'s extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    if ext in _SF_FORMATS:
        fmt, subtype = _SF_FORMATS[ext]
        rate = 48000 if ext == ".opus" and sr not in (8000, 12000, 16000, 24000, 48000) else sr
        if rate != sr:
            import soxr

            audio = soxr.resample(audio, sr, rate).astype(np.float32)
        # libsndfile's Vorbis/Opus encoders crash on very large single writes: write in blocks.
        with sf.SoundFile(
            str(path), "w", rate, audio.shape[1], format=fmt, subtype=subtype
        ) as handle:
            for start in range(0, audio.shape[0], 16384):
                handle.write(audio[start : start + 16384])
        return path
    if ext in (".m4a", ".aac"):
        raw = path.with_suffix(".tmp.wav")
        sf.write(str(raw), audio, sr, subtype="PCM_16")
        try:
            run = subprocess.run(
                [
                    "ffmpeg",
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-y",
                    "-i",
                    str(raw),
                    "-c:a",
                    "aac",
                    "-b:a",
                    "96k",
                    str(path),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            raw.unlink(missing_ok=True)
        if run.returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({run.returncode}): {run.stderr[-500:]}")
        return path
    raise ValueError(f"no writer for {ext}")


def corrupt_mp3(path: Path, size: int = 4096, seed: int = 0) -> Path:
    """A file named .mp3 with an ID3 tag followed by noise bytes: no decoder can use it."""
    rng = np.random.default_rng(seed)
    body = bytes(rng.integers(0, 256, size, dtype=np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"ID3\x03\x00\x00\x00\x00\x00\x0a" + b"\x00" * 10
    path.write_bytes(header + body.replace(b"\xff", b"\x00"))  # no MPEG frame sync anywhere
    return path


def make_tiny_demucs(repo: Path, name: str = "tiny_htdemucs", seed: int = 0) -> str:
    """Save a tiny random HTDemucs in Demucs's own format: `<sig>-<sha>.th` plus a `NAME.yaml`
    bag, loadable with `demucs.pretrained.get_model(NAME, repo=repo)`. Returns the signature.

    Channels 8, depth 4, one transformer layer, 2 s segments: separates 2 s in well under a
    second on one CPU thread (depth 2 makes the transformer attend over ~11k tokens).
    """
    import hashlib
    from fractions import Fraction

    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import serialize_model
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    model = HTDemucs(
        sources=["drums", "bass", "other", "vocals"],
        audio_channels=2,
        samplerate=44100,
        channels=8,
        depth=4,
        t_layers=1,
        nfft=1024,
        segment=Fraction(2),
    )
    repo.mkdir(parents=True, exist_ok=True)
    sig = f"{seed:08x}"
    tmp = repo / f"{sig}.tmp"
    torch.save(serialize_model(model, OmegaConf.create({}), half=False), tmp)
    checksum = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    tmp.rename(repo / f"{sig}-{checksum}.th")
    (repo / f"{name}.yaml").write_text(f"models: ['{sig}']\n")
    return sig
