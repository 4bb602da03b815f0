"""Token cache: every chunk is encoded by the base compression model once, not once per step.

AudioCraft's MusicGen solver runs the compression model (EnCodec) over every batch of every
step. A fine-tune reads the same few hundred chunks for hundreds of updates, always from their
start (segments are as long as the chunks and never seek, training/overrides.py), so their codes
never change. Before the first step the solver encodes each manifest chunk that is not cached
yet (each process a share of them), and trains from the cached codes afterwards.

An entry (musicgen_ft.cache, kind "tokens") is keyed by the chunk's content hash, the
compression model's weights (a hash over its state dict, so any change of base model is another
key) and the segment's length, sample rate and channels. Entries are shared by every job,
re-run and resume on the machine; `MUSICGEN_FT_TOKEN_CACHE=0` turns the cache off.

Audio is read exactly as AudioCraft's dataset reads a segment (`audio_read` from 0 s for the
segment's length, `convert_audio`, zero padding to the segment), and the solver compares the
first training batch's cached codes with the codes of the batch's own audio before trusting
the cache (training/solver.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import typing as tp
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from musicgen_ft.cache import Cache, content_hash

logger = logging.getLogger(__name__)

KIND = "tokens"
VERSION = "1"
CODES_FILE = "codes.npy"
ENV = "MUSICGEN_FT_TOKEN_CACHE"
# Codes are stored as int16: every released codebook has at most 2048 entries.
MAX_CARD = 2**15
# On GPUs, batched convolutions may round differently from the pre-encoding's: a code at an
# exact tie between two codebook entries can flip. Below this share of equal codes the solver
# drops the cache and encodes on the fly.
MIN_AGREEMENT = 0.999
ENCODE_BATCH = 8

Encoder = tp.Callable[[torch.Tensor], torch.Tensor]


def enabled(env: tp.Mapping[str, str] | None = None) -> bool:
    """Whether jobs use the token cache (`MUSICGEN_FT_TOKEN_CACHE=0` turns it off)."""
    value = (os.environ if env is None else env).get(ENV, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over a model's state dict (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode() + b"\x00")
        digest.update(value.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Segment:
    """How the dataset reads a chunk: length in seconds, sample rate and channels."""

    seconds: float
    sample_rate: int
    channels: int

    @property
    def frames(self) -> int:
        return int(self.seconds * self.sample_rate)


def read_segment(path: Path, segment: Segment) -> torch.Tensor:
    """A chunk's audio as AudioCraft's dataset gives it: [channels, segment frames]."""
    from audiocraft.data.audio import audio_read
    from audiocraft.data.audio_utils import convert_audio

    wav, sr = audio_read(path, 0.0, segment.seconds, pad=False)
    wav = convert_audio(wav, sr, segment.sample_rate, segment.channels)
    return torch.nn.functional.pad(wav, (0, segment.frames - wav.shape[-1]))


@dataclass
class CacheStats:
    chunks: int = 0
    encoded: int = 0  # by this process, now
    cached: int = 0  # found in the cache


class TokenCache:
    """Codes of a dataset's chunks under one compression model, in memory once prepared."""

    def __init__(self, root: Path, fingerprint: str, segment: Segment) -> None:
        self.entries = Cache(KIND, VERSION, root)
        self.fingerprint = fingerprint
        self.segment = segment
        self.codes: dict[str, torch.Tensor] = {}  # resolved chunk path -> [K, T] int64

    def _key(self, chunk_hash: str) -> str:
        s = self.segment
        return self.entries.key(
            chunk_hash, self.fingerprint, f"{s.seconds:g}", str(s.sample_rate), str(s.channels)
        )

    def prepare(
        self, paths: tp.Sequence[str], encode: Encoder, rank: int = 0, world: int = 1
    ) -> CacheStats:
        """Encode this process's share of the chunks missing from the cache.

        Every process must afterwards wait for the others (a barrier) and call `load`.
        """
        stats = CacheStats(chunks=len(paths))
        missing: list[tuple[str, str]] = []
        for i, path in enumerate(sorted(set(paths))):
            key = self._key(content_hash(Path(path)))
            if self.entries.get(key) is not None:
                stats.cached += 1
            elif i % world == rank:
                missing.append((path, key))
        for start in range(0, len(missing), ENCODE_BATCH):
            part = missing[start : start + ENCODE_BATCH]
            audio = torch.stack([read_segment(Path(p), self.segment) for p, _ in part])
            with torch.no_grad():
                codes = encode(audio).cpu()
            if int(codes.max()) >= MAX_CARD:
                raise ValueError(f"codes up to {int(codes.max())} do not fit the token cache")
            for (path, key), one in zip(part, codes, strict=True):
                record = {"chunk": Path(path).name, "shape": list(one.shape)}
                self.entries.put(key, record, _writer(one.numpy().astype(np.int16)))
                stats.encoded += 1
        return stats

    def load(self, paths: tp.Sequence[str]) -> int:
        """Read the codes of every chunk into memory; returns how many were found."""
        for path in sorted(set(paths)):
            found = self.entries.get(self._key(content_hash(Path(path))))
            if found is not None:
                array = np.load(found[0] / CODES_FILE)
                self.codes[str(Path(path).resolve())] = torch.from_numpy(array.astype(np.int64))
        return len(self.codes)

    def lookup(self, infos: tp.Sequence[tp.Any]) -> torch.Tensor | None:
        """The codes of a batch ([B, K, T]) when every segment is a cached chunk read from 0 s."""
        found = []
        for info in infos:
            codes = self.codes.get(str(Path(info.meta.path).resolve()))
            if codes is None or float(info.seek_time) != 0.0:
                return None
            found.append(codes)
        return torch.stack(found) if found else None


def _writer(codes: np.ndarray) -> tp.Callable[[Path], None]:
    def write(folder: Path) -> None:
        np.save(folder / CODES_FILE, codes)

    return write


def agreement(cached: torch.Tensor, fresh: torch.Tensor) -> float:
    """Share of equal codes between the cached and freshly encoded codes of a batch."""
    if cached.shape != fresh.shape:
        return 0.0
    return float((cached.to(fresh.device) == fresh).float().mean())


def manifest_paths(*manifests: Path) -> list[str]:
    """Audio paths of AudioCraft `data.jsonl` manifests (or folders holding one)."""
    paths: list[str] = []
    for manifest in manifests:
        file = manifest / "data.jsonl" if manifest.is_dir() else manifest
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                paths.append(str(json.loads(line)["path"]))
    return paths
