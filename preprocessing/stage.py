"""Data preparation stage: fetch → unpack → per-file preprocessing → chunks and a report."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from musicgen_ft.errors import DatasetError
from musicgen_ft.types import Chunk, DatasetReport, Rejected
from preprocessing.audio import PrepSettings, PreparedFile, UnusableAudio, prepare_file
from preprocessing.fetch import FetchSettings, fetch
from preprocessing.unpack import Unpacked, unpack

logger = logging.getLogger(__name__)


@dataclass
class PreparedDataset:
    chunks: list[Chunk]
    report: DatasetReport
    root: Path


def read_caption(audio: Path) -> str | None:
    """The text of `songname.txt` next to `songname.<ext>`, if present and not empty."""
    caption = audio.with_suffix(".txt")
    if not caption.is_file():
        return None
    text = caption.read_text(encoding="utf-8", errors="replace").strip()
    return " ".join(text.split()) or None


def _prepare_one(args: tuple[Path, str, Path, PrepSettings]) -> PreparedFile | str:
    path, source, out_dir, settings = args
    try:
        return prepare_file(path, source, out_dir, settings)
    except UnusableAudio as exc:
        return str(exc)
    except MemoryError:
        return "too large to decode in memory"


def prepare(
    source: str,
    settings: PrepSettings,
    workdir: Path,
    fetch_settings: FetchSettings | None = None,
    workers: int | None = None,
) -> PreparedDataset:
    """Fetch and unpack `source` and prepare every usable audio file in it.

    Writes under `workdir/fetch`, `workdir/unpacked` and `workdir/chunks`. Raises DatasetError
    when nothing usable remains, with the reason for every file.
    """
    local = fetch(source, workdir / "fetch", fetch_settings)
    unpacked = unpack(local, workdir / "unpacked")
    return prepare_unpacked(unpacked, settings, workdir / "chunks", workers)


def prepare_unpacked(
    unpacked: Unpacked, settings: PrepSettings, chunk_dir: Path, workers: int | None = None
) -> PreparedDataset:
    report = DatasetReport(ignored=dict(unpacked.ignored), files_seen=len(unpacked.audio))
    if not unpacked.audio:
        ignored = ", ".join(f"{n} {k}" for k, n in sorted(unpacked.ignored.items())) or "nothing"
        raise DatasetError(
            f"the dataset has no audio files (ignored: {ignored}); supported formats are "
            "wav, mp3, flac, ogg, opus, m4a/aac and aiff"
        )
    jobs = [
        (path, path.relative_to(unpacked.root).as_posix(), chunk_dir, settings)
        for path in unpacked.audio
    ]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_prepare_one, jobs))
    else:
        results = [_prepare_one(job) for job in jobs]

    chunks: list[Chunk] = []
    seen_hashes: set[str] = set()
    for (path, rel, _, _), result in zip(jobs, results, strict=True):
        if isinstance(result, str):
            report.files_rejected.append(Rejected(rel, result))
            continue
        report.dropped_silent_chunks += result.silent_chunks
        if result.clipped:
            report.clipping.append(rel)
        caption = read_caption(path)
        kept = 0
        for (index, start, duration, chunk_path), digest in zip(
            result.chunks, result.chunk_hashes, strict=True
        ):
            if digest in seen_hashes:
                report.dropped_duplicate_chunks += 1
                chunk_path.unlink(missing_ok=True)
                continue
            seen_hashes.add(digest)
            kept += 1
            chunks.append(
                Chunk(
                    path=chunk_path,
                    source=rel,
                    index=index,
                    start=start,
                    duration=duration,
                    sample_rate=settings.sample_rate,
                    channels=settings.channels,
                    caption=caption,
                )
            )
            report.minutes += duration / 60.0
        if kept:
            report.files_used.append(rel)
        elif result.chunks:
            report.files_rejected.append(Rejected(rel, "duplicate of another file's audio"))
        else:
            report.files_rejected.append(Rejected(rel, "only silence"))
    report.chunks = len(chunks)
    if not chunks:
        reasons = "; ".join(f"{r.path}: {r.reason}" for r in report.files_rejected)
        raise DatasetError(f"no usable audio in the dataset ({reasons})")
    return PreparedDataset(chunks=chunks, report=report, root=unpacked.root)
