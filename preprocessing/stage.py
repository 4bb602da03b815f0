"""Data preparation stage: fetch → unpack → per-file preprocessing → chunks and a report.

Files are prepared in parallel worker processes (forked, so they start without re-importing
anything); the stage then drops exact duplicates in a fixed order and builds the report. With a
`cache_dir`, a dataset already prepared with the same settings is reused (see `cache`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from musicgen_ft.cache import content_hash
from musicgen_ft.errors import DatasetError
from musicgen_ft.types import Chunk, DatasetReport, Rejected
from preprocessing import cache
from preprocessing.audio import PreparedFile, PrepSettings, UnusableAudio, prepare_file
from preprocessing.fetch import FetchSettings, fetch
from preprocessing.progress import Progress
from preprocessing.unpack import Unpacked, UnpackSettings, unpack
from preprocessing.vocals import VocalSettings

logger = logging.getLogger(__name__)

CAPTION_MAX_CHARS = 2000


@dataclass
class PreparedDataset:
    chunks: list[Chunk]
    report: DatasetReport
    root: Path


def read_caption(audio: Path) -> str | None:
    """The text of `songname.txt` next to `songname.<ext>`, if present and not empty."""
    for suffix in (".txt", ".TXT"):
        caption = audio.with_suffix(suffix)
        if caption.is_file():
            text = caption.read_text(encoding="utf-8-sig", errors="replace").strip()
            return " ".join(text.split())[:CAPTION_MAX_CHARS] or None
    return None


def _prepare_one(args: tuple[Path, str, Path, PrepSettings]) -> PreparedFile | str:
    path, source, out_dir, settings = args
    try:
        return prepare_file(path, source, out_dir, settings)
    except UnusableAudio as exc:
        return str(exc)
    except MemoryError:
        return "too large to decode in memory; split it into shorter files"


def prepare(
    source: str,
    settings: PrepSettings,
    workdir: Path,
    fetch_settings: FetchSettings | None = None,
    workers: int | None = None,
    *,
    unpack_settings: UnpackSettings | None = None,
    cache_dir: Path | None = None,
    transport: object | None = None,
) -> PreparedDataset:
    """Fetch and unpack `source` and prepare every usable audio file in it.

    Args:
        source: URL, archive, folder or audio file (the job's `dataset_path`).
        settings: Target rate/channels, loudness and chunking.
        workdir: The stage's folder; writes `fetch/`, `unpacked/` and `chunks/` under it.
        fetch_settings: Download limits and address policy.
        workers: Worker processes (default: one per CPU, at most one per file).
        unpack_settings: Archive caps.
        cache_dir: Root of the caches; prepared chunks are reused and recorded in its `prep/`
            entries (None: no cache).
        transport: httpx transport for downloads (tests).

    Raises:
        DatasetError: when the input is unusable or nothing usable remains, with the reason for
            every file.
    """
    local = fetch(source, workdir / "fetch", fetch_settings, transport=transport)
    chunk_dir = workdir / "chunks"
    key = None
    if cache_dir is not None:
        prep = cache.prep_cache(cache_dir)
        key = prep.key(content_hash(local), settings.key())
        hit = cache.load(prep, key, chunk_dir)
        if hit is not None:
            chunks, report = hit
            logger.info("reusing %d prepared chunks from the cache (%s)", len(chunks), key)
            root = local if local.is_dir() else workdir / "unpacked"
            return PreparedDataset(chunks=chunks, report=report, root=root)
    if chunk_dir.exists():  # a re-run: its old chunks may be links into the cache
        shutil.rmtree(chunk_dir)
    unpacked = unpack(local, workdir / "unpacked", unpack_settings)
    prepared = prepare_unpacked(unpacked, settings, chunk_dir, workers)
    if cache_dir is not None and key is not None:
        cache.store(cache.prep_cache(cache_dir), key, prepared.chunks, prepared.report)
    return prepared


def _executor(workers: int) -> Executor:
    # Forked workers start at once with everything imported; forking a process that runs other
    # threads (a server, a progress monitor) can deadlock on a lock held there, so such a
    # process starts clean workers instead (they import the prep modules, ~0.5 s each).
    alone = threading.active_count() == 1
    method = "fork" if sys.platform.startswith("linux") and alone else "spawn"
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(method),
    )


def prepare_unpacked(
    unpacked: Unpacked, settings: PrepSettings, chunk_dir: Path, workers: int | None = None
) -> PreparedDataset:
    """Prepare every audio file of `unpacked` into `chunk_dir` and build the report."""
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
    # Largest first, so a long file does not start last and leave one core idle at the end.
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i][0].stat().st_size)
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    results: list[PreparedFile | str | None] = [None] * len(jobs)
    with Progress("prepare", len(jobs), unit="files") as progress:
        if workers > 1:
            with _executor(workers) as pool:
                futures = {i: pool.submit(_prepare_one, jobs[i]) for i in order}
                for i in order:
                    results[i] = futures[i].result()
                    progress.update()
        else:
            for i in order:
                results[i] = _prepare_one(jobs[i])
                progress.update()
    return _collect(jobs, results, report, settings, unpacked.root)


def _collect(
    jobs: list[tuple[Path, str, Path, PrepSettings]],
    results: list[PreparedFile | str | None],
    report: DatasetReport,
    settings: PrepSettings,
    root: Path,
) -> PreparedDataset:
    chunks: list[Chunk] = []
    seen_hashes: dict[str, str] = {}
    for (path, rel, _, _), result in zip(jobs, results, strict=True):
        assert result is not None
        if isinstance(result, str):
            report.files_rejected.append(Rejected(rel, result))
            continue
        report.dropped_silent_chunks += result.silent_chunks
        if result.clipped:
            report.clipping.append(rel)
        caption = read_caption(path)
        kept, duplicate_of = 0, None
        for (index, start, duration, chunk_path), digest in zip(
            result.chunks, result.chunk_hashes, strict=True
        ):
            if digest in seen_hashes:
                report.dropped_duplicate_chunks += 1
                duplicate_of = duplicate_of or seen_hashes[digest]
                chunk_path.unlink(missing_ok=True)
                continue
            seen_hashes[digest] = rel
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
            report.files_rejected.append(Rejected(rel, f"duplicate of {duplicate_of}"))
        else:
            report.files_rejected.append(Rejected(rel, "only silence"))
    report.chunks = len(chunks)
    if not chunks:
        reasons = "; ".join(f"{r.path}: {r.reason}" for r in report.files_rejected)
        raise DatasetError(f"no usable audio in the dataset ({reasons})")
    return PreparedDataset(chunks=chunks, report=report, root=root)


def prepare_dataset(
    source: str,
    settings: PrepSettings,
    vocal_settings: VocalSettings,
    workdir: Path,
    fetch_settings: FetchSettings | None = None,
    *,
    workers: int | None = None,
    cache_root: Path | None = None,
    stage: Callable[[str], AbstractContextManager[None]] = lambda name: nullcontext(),
) -> PreparedDataset:
    """Prepare `source`, then remove the vocals of its chunks when `vocal_settings` say so.

    The one order of the data stages, used by the pipeline and by `python -m preprocessing`.

    Args:
        source: URL, archive, folder or audio file.
        settings: Target rate/channels, loudness and chunking.
        vocal_settings: Demucs settings (`enabled=False` keeps the vocals).
        workdir: Writes `prepare/` and `vocals/` under it.
        fetch_settings: Download limits and address policy.
        workers: Preparation worker processes.
        cache_root: Root of the caches (`prep/`, `vocals/` under it); None: no cache.
        stage: Wraps each stage ("prepare", "vocals"), e.g. to time it.
    """
    from preprocessing.vocals import remove_vocals

    with stage("prepare"):
        prepared = prepare(
            source,
            settings,
            workdir / "prepare",
            fetch_settings,
            workers,
            cache_dir=cache_root,
        )
    if not vocal_settings.enabled:
        prepared.report.vocal_removal = {"applied": False, "reason": "drop_vocals=false"}
        return prepared
    with stage("vocals"):
        prepared.chunks, prepared.report.vocal_removal = remove_vocals(
            prepared.chunks,
            vocal_settings,
            workdir / "vocals",
            cache_dir=cache_root,
        )
    return prepared
