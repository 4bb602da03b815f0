"""AudioCraft manifests of a prepared dataset: `egs/{train,valid}/data.jsonl` + per-chunk info.

AudioCraft's MusicDataset reads each example's metadata from a JSON file next to its audio
(`chunk.wav` → `chunk.json`, MusicInfo fields). Chunks are hard-linked (or copied) into this
stage's folder so the info files sit beside them without touching the preparation stage's
output. The validation split holds out whole source files, so no validation example shares
audio with the training set.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicgen_ft.atomic import atomic_write_text
from musicgen_ft.types import Chunk

VALID_FRACTION = 0.1
MAX_VALID_SOURCES = 16


@dataclass(frozen=True)
class Manifest:
    egs_dir: Path
    train: int
    valid: int
    split_note: str


def split_by_source(chunks: list[Chunk], seed: int) -> tuple[list[Chunk], list[Chunk], str]:
    """Hold out whole source files (about 10 %, at least one) for validation.

    With a single source file, hold out its last chunk; with a single chunk, validation has to
    reuse it, and the returned note says so.
    """
    sources = sorted({c.source for c in chunks})
    if len(sources) >= 2:
        count = max(1, min(MAX_VALID_SOURCES, round(len(sources) * VALID_FRACTION)))
        held = set(random.Random(seed).sample(sources, count))
        train = [c for c in chunks if c.source not in held]
        valid = [c for c in chunks if c.source in held]
        return train, valid, f"{count} of {len(sources)} source files held out for validation"
    if len(chunks) >= 2:
        ordered = sorted(chunks, key=lambda c: c.index)
        return (
            ordered[:-1],
            ordered[-1:],
            "one source file: its last chunk is held out for validation",
        )
    return (
        list(chunks),
        list(chunks),
        "one chunk only: validation reuses the training example (no held-out data)",
    )


def _link(src: Path, dst: Path) -> None:
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_manifest(
    chunks: list[Chunk],
    infos: dict[str, dict[str, Any]],
    out_dir: Path,
    seed: int,
) -> Manifest:
    """Write the audio links, per-chunk info JSONs and the train/valid manifests.

    Args:
        chunks: Prepared chunks.
        infos: MusicInfo fields for each chunk id (see labeling.describe.music_info).
        out_dir: This stage's folder.
        seed: Seed of the validation split.
    """
    train, valid, note = split_by_source(chunks, seed)
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    for split, items in (("train", train), ("valid", valid)):
        lines = []
        for chunk in items:
            wav = audio_dir / chunk.path.name
            # Always this job's audio and info: a re-run's descriptions or audio may differ.
            _link(chunk.path, wav)
            atomic_write_text(wav.with_suffix(".json"), json.dumps(infos[chunk.chunk_id], indent=1))
            lines.append(
                json.dumps(
                    {
                        "path": str(wav.resolve()),
                        "duration": round(chunk.duration, 6),
                        "sample_rate": chunk.sample_rate,
                        "amplitude": None,
                        "weight": None,
                        "info_path": None,
                    }
                )
            )
        split_dir = out_dir / "egs" / split
        split_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(split_dir / "data.jsonl", "\n".join(lines) + "\n")
    return Manifest(egs_dir=out_dir / "egs", train=len(train), valid=len(valid), split_note=note)
