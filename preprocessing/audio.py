"""Decode, resample, loudness-normalize and chunk one source file.

Every usable file goes through the same steps, whatever its length: decode with a real decoder
(libsndfile for wav/flac/aiff, FFmpeg's libraries through PyAV for the compressed formats, each
falling back to the other), mix to the variant's channel layout, resample with soxr, normalize
integrated loudness with a peak ceiling, then cut 30 s chunks (a tail chunk only when it is longer
than the 5 s minimum). Silent chunks are dropped, chunks are hashed so that the stage can drop
exact duplicates, and clipping in the source is reported.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from musicgen_ft.atomic import atomic_write_bytes_from
from musicgen_ft.constants import CHUNK_SECONDS
from preprocessing.loudness import loudness_gain_db

# libsndfile reads these fast (for Ogg Vorbis about twice as fast as PyAV's per-frame loop);
# the rest (m4a/aac/mp4) go to FFmpeg first.
_SNDFILE_FIRST = frozenset(
    {".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".oga", ".opus"}
)
CLIP_LEVEL = 0.999
CLIP_FRACTION = 1e-3


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
    chunk_seconds: float = CHUNK_SECONDS
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
    """What one source file became: chunk WAVs (index, start s, duration s, path) and facts."""

    source: str
    chunks: list[tuple[int, float, float, Path]] = field(default_factory=list)
    chunk_hashes: list[str] = field(default_factory=list)
    silent_chunks: int = 0
    clipped: bool = False
    seconds: float = 0.0
    gain_db: float = 0.0


def decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode `path` to float32 [frames, channels] and its sample rate. Raises UnusableAudio."""
    order = (
        (_decode_sndfile, _decode_av)
        if path.suffix.lower() in _SNDFILE_FIRST
        else (_decode_av, _decode_sndfile)
    )
    errors: dict[object, UnusableAudio] = {}
    for decoder in order:
        try:
            audio, sr = decoder(path)
        except UnusableAudio as exc:
            errors[decoder] = exc
            continue
        if audio.shape[0] > 0 and sr > 0:
            return audio, sr
        errors[decoder] = UnusableAudio("cannot decode: no audio samples")
    # FFmpeg's reasons are the more telling ones (libsndfile often says "unknown format").
    raise errors.get(_decode_av) or errors[_decode_sndfile]


def _decode_sndfile(path: Path) -> tuple[np.ndarray, int]:
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc).replace(str(path), "the file")
        raise UnusableAudio(f"cannot decode: {reason}") from None
    return data, int(sr)


def _decode_av(path: Path) -> tuple[np.ndarray, int]:
    import av

    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                raise UnusableAudio("cannot decode: no audio stream in the file")
            stream = streams[0]
            sr = int(getattr(stream.codec_context, "sample_rate", 0) or 0)
            for frame in container.decode(stream):
                frames.append(_frame_to_array(frame))
    except UnusableAudio:
        raise
    except Exception as exc:  # PyAV raises many error types for corrupt input
        reason = getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}"
        raise UnusableAudio(f"cannot decode: {str(reason).lower()}") from None
    if not frames or sr <= 0:
        raise UnusableAudio("cannot decode: no audio frames")
    return np.concatenate(frames, axis=0), sr


def _frame_to_array(frame: object) -> np.ndarray:
    array = frame.to_ndarray()  # type: ignore[attr-defined]
    channels = len(frame.layout.channels)  # type: ignore[attr-defined]
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        array = (array.astype(np.float32) - (info.max + info.min + 1) / 2) / (info.max + 1)
    array = array.astype(np.float32, copy=False)
    if frame.format.is_planar:  # type: ignore[attr-defined]
        return array.reshape(channels, -1).T
    return array.reshape(-1, channels)


def to_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Mix down to mono, or keep/duplicate channels for stereo."""
    have = audio.shape[1]
    if channels == 1:
        if have == 2:  # the common case, without mean()'s reduction machinery
            return ((audio[:, 0] + audio[:, 1]) * np.float32(0.5))[:, None]
        return audio.mean(axis=1, keepdims=True, dtype=np.float32) if have > 1 else audio
    if have == 1:
        return np.repeat(audio, channels, axis=1)
    if have == channels:
        return audio
    # More channels than wanted (e.g. 5.1): fold the extra ones into left/right equally.
    left = audio[:, 0::2].mean(axis=1)
    right = audio[:, 1::2].mean(axis=1)
    return np.stack([left, right], axis=1)


def is_clipped(audio: np.ndarray) -> bool:
    """More than 0.1 % of samples at full scale: the source was clipped."""
    if max(float(audio.max()), -float(audio.min())) < CLIP_LEVEL:
        return False
    return bool(np.count_nonzero(np.abs(audio) >= CLIP_LEVEL) > CLIP_FRACTION * audio.size)


def prepare_file(path: Path, source: str, out_dir: Path, settings: PrepSettings) -> PreparedFile:
    """Turn one source file into chunk WAVs under `out_dir`. Raises UnusableAudio."""
    audio, sr = decode(path)
    seconds = audio.shape[0] / sr
    if seconds <= settings.min_seconds:
        raise UnusableAudio(
            f"too short: {seconds:.1f} s; files must be longer than {settings.min_seconds:g} s"
        )
    if not np.all(np.isfinite(audio)):
        raise UnusableAudio("cannot decode: the file holds NaN or infinite samples")
    result = PreparedFile(source=source, seconds=seconds, clipped=is_clipped(audio))
    audio = to_channels(audio, settings.channels)
    if sr != settings.sample_rate:
        audio = soxr.resample(audio, sr, settings.sample_rate, quality="HQ")
    gain_db = loudness_gain_db(
        audio, settings.sample_rate, settings.target_lufs, settings.peak_dbfs
    )
    if gain_db is None:
        raise UnusableAudio("the file is silent")
    result.gain_db = gain_db
    scale = np.float32(10 ** (gain_db / 20) * 32767.0)
    pcm = np.clip(np.rint(audio * scale), -32768, 32767).astype("<i2")
    del audio

    step = int(settings.chunk_seconds * settings.sample_rate)
    minimum = int(settings.min_seconds * settings.sample_rate)
    silence_power = (10 ** (settings.silence_dbfs / 20) * 32767.0) ** 2
    stem = chunk_stem(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(0, pcm.shape[0], step)):
        piece = pcm[start : start + step]
        if piece.shape[0] <= minimum:
            continue
        power = float(np.mean(np.square(piece, dtype=np.float64)))
        if power < silence_power:
            result.silent_chunks += 1
            continue
        digest = hashlib.sha256(piece.tobytes()).hexdigest()
        chunk_path = out_dir / f"{stem}-{index:04d}.wav"
        # Replace, never rewrite: the old file may be a link into the cache.
        atomic_write_bytes_from(
            chunk_path,
            lambda tmp, piece=piece: sf.write(  # type: ignore[misc]
                str(tmp), piece, settings.sample_rate, subtype="PCM_16", format="WAV"
            ),
        )
        result.chunks.append(
            (index, start / settings.sample_rate, piece.shape[0] / settings.sample_rate, chunk_path)
        )
        result.chunk_hashes.append(digest)
    return result


def chunk_stem(source: str) -> str:
    """A file-name-safe, unique stem for chunks of `source` (a relative path)."""
    base = Path(source).stem
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in base)[:60] or "audio"
    tag = hashlib.sha1(source.encode("utf-8")).hexdigest()[:8]
    return f"{keep}-{tag}"


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level of float audio in dBFS (-inf for digital silence)."""
    power = float(np.mean(np.square(audio, dtype=np.float64))) if audio.size else 0.0
    return 10 * math.log10(power) if power > 0 else -math.inf
