"""Decode, resample, loudness-normalize and chunk one source file.

Every usable file goes through the same steps, whatever its length: decode with a real decoder
(libsndfile, or FFmpeg's libraries through PyAV for the formats libsndfile lacks), mix to the
variant's channel layout, resample with soxr, normalize integrated loudness with a peak ceiling,
then cut 30 s chunks (a tail chunk only when it is longer than the 5 s minimum). Silent chunks
and exact duplicates are dropped; clipping is reported.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf
import soxr

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".mp4",
     ".aif", ".aiff", ".aifc"}
)


@dataclass(frozen=True)
class PrepSettings:
    """How a source file becomes chunks.

    Attributes:
        sample_rate: Target sample rate (the variant's).
        channels: Target channels (1 mono, 2 stereo).
        chunk_seconds: Length of a chunk.
        min_seconds: Files of this length or less are rejected; tail chunks must be longer.
        target_lufs: Integrated loudness target.
        peak_dbfs: Sample-peak ceiling after normalization.
        silence_dbfs: Chunks whose RMS is below this are dropped as silence.
    """

    sample_rate: int = 32000
    channels: int = 1
    chunk_seconds: float = 30.0
    min_seconds: float = 5.0
    target_lufs: float = -14.0
    peak_dbfs: float = -1.0
    silence_dbfs: float = -60.0

    def key(self) -> str:
        return (
            f"sr{self.sample_rate}-ch{self.channels}-c{self.chunk_seconds:g}-m{self.min_seconds:g}"
            f"-l{self.target_lufs:g}-p{self.peak_dbfs:g}-s{self.silence_dbfs:g}"
        )


class UnusableAudio(Exception):
    """The file cannot be used; the message is the reason shown to the user."""


@dataclass
class PreparedFile:
    source: str
    chunks: list[tuple[int, float, float, Path]] = field(default_factory=list)
    chunk_hashes: list[str] = field(default_factory=list)
    silent_chunks: int = 0
    clipped: bool = False
    seconds: float = 0.0


def decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode `path` to float32 [frames, channels] and its sample rate."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return data, int(sr)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    return _decode_av(path)


def _decode_av(path: Path) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(path)) as container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                raise UnusableAudio("no audio stream in the file")
            stream = streams[0]
            frames: list[np.ndarray] = []
            sr = int(stream.codec_context.sample_rate or 0)
            for frame in container.decode(stream):
                array = frame.to_ndarray()
                if array.dtype.kind == "i":
                    array = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
                channels = len(frame.layout.channels)
                if frame.format.is_planar:
                    frames.append(array.reshape(channels, -1).T.astype(np.float32))
                else:
                    frames.append(array.reshape(-1, channels).astype(np.float32))
    except UnusableAudio:
        raise
    except Exception as exc:  # PyAV raises many error types for corrupt input
        raise UnusableAudio(f"cannot decode: {type(exc).__name__}: {exc}".strip()) from None
    if not frames or sr <= 0:
        raise UnusableAudio("cannot decode: no audio frames")
    return np.concatenate(frames, axis=0), sr


def to_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Mix down to mono, or keep/duplicate channels for stereo."""
    have = audio.shape[1]
    if channels == 1:
        return audio.mean(axis=1, keepdims=True) if have > 1 else audio
    if have == 1:
        return np.repeat(audio, channels, axis=1)
    if have == channels:
        return audio
    # More channels than wanted (e.g. 5.1): fold the extra ones into left/right equally.
    left = audio[:, 0::2].mean(axis=1)
    right = audio[:, 1::2].mean(axis=1)
    return np.stack([left, right], axis=1)


def normalize_loudness(
    audio: np.ndarray, sample_rate: int, target_lufs: float, peak_dbfs: float
) -> np.ndarray:
    """Scale to `target_lufs` integrated loudness, lowered if the peak would pass `peak_dbfs`."""
    meter = pyloudnorm.Meter(sample_rate)
    block = meter.block_size
    if audio.shape[0] < int(block * sample_rate) + 1:
        measured = 20 * math.log10(float(np.sqrt(np.mean(audio**2))) + 1e-12)  # short: RMS
    else:
        measured = float(meter.integrated_loudness(audio))
    if not math.isfinite(measured):
        raise UnusableAudio("the file is silent")
    gain_db = target_lufs - measured
    peak = float(np.max(np.abs(audio)))
    if peak > 0:
        gain_db = min(gain_db, peak_dbfs - 20 * math.log10(peak))
    return (audio * (10 ** (gain_db / 20))).astype(np.float32)


def prepare_file(
    path: Path, source: str, out_dir: Path, settings: PrepSettings
) -> PreparedFile:
    """Turn one source file into chunk WAVs under `out_dir`. Raises UnusableAudio."""
    try:
        audio, sr = decode(path)
    except UnusableAudio:
        raise
    except Exception as exc:
        raise UnusableAudio(f"cannot decode: {type(exc).__name__}: {exc}") from None
    if audio.size == 0 or sr <= 0:
        raise UnusableAudio("no audio samples")
    seconds = audio.shape[0] / sr
    if seconds <= settings.min_seconds:
        raise UnusableAudio(
            f"{seconds:.1f} s long; files must be longer than {settings.min_seconds:g} s"
        )
    result = PreparedFile(source=source, seconds=seconds)
    result.clipped = bool(np.mean(np.abs(audio) >= 0.999) > 1e-3)
    audio = to_channels(audio, settings.channels)
    if sr != settings.sample_rate:
        audio = soxr.resample(audio, sr, settings.sample_rate, quality="HQ").astype(np.float32)
    audio = normalize_loudness(audio, settings.sample_rate, settings.target_lufs, settings.peak_dbfs)

    step = int(settings.chunk_seconds * settings.sample_rate)
    minimum = int(settings.min_seconds * settings.sample_rate)
    stem = _safe_stem(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(0, audio.shape[0], step)):
        piece = audio[start : start + step]
        if piece.shape[0] <= minimum:
            continue
        rms = float(np.sqrt(np.mean(piece.astype(np.float64) ** 2)))
        if 20 * math.log10(rms + 1e-12) < settings.silence_dbfs:
            result.silent_chunks += 1
            continue
        pcm = np.clip(np.round(piece * 32767.0), -32768, 32767).astype("<i2")
        digest = hashlib.sha256(pcm.tobytes()).hexdigest()
        chunk_path = out_dir / f"{stem}-{index:04d}.wav"
        sf.write(str(chunk_path), pcm, settings.sample_rate, subtype="PCM_16")
        result.chunks.append(
            (index, start / settings.sample_rate, piece.shape[0] / settings.sample_rate, chunk_path)
        )
        result.chunk_hashes.append(digest)
    return result


def _safe_stem(source: str) -> str:
    """A file-name-safe, unique stem for chunks of `source` (a relative path)."""
    base = Path(source).stem
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in base)[:60] or "audio"
    tag = hashlib.sha1(source.encode("utf-8")).hexdigest()[:8]
    return f"{keep}-{tag}"
