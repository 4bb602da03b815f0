"""Prepared-chunk cache, keyed by the dataset's content hash and the preparation settings.

An entry is a folder `<cache_dir>/<key>/` holding the chunk WAVs and `manifest.json` (the chunk
records and the report). Entries are built in a temporary folder and renamed into place, so a
killed job never leaves half an entry. A hit hard-links the chunks into the job's work dir
(copies when the cache is on another file system), so the job owns its files either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from musicgen_ft.types import Chunk, DatasetReport, Rejected

# Bump when preparation changes what it produces for the same input and settings.
CACHE_VERSION = "prep-3"
_BLOCK = 1 << 20


def default_cache_dir() -> Path:
    """`$MUSICGEN_FT_CACHE`, else `~/.cache/musicgen-ft/cache`; stages use sub-folders of it."""
    env = os.environ.get("MUSICGEN_FT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "musicgen-ft" / "cache"


def content_hash(path: Path) -> str:
    """SHA-256 over a file's bytes, or over every file of a folder (relative path and bytes)."""
    digest = hashlib.sha256()
    if path.is_dir():
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                item = Path(folder) / name
                if not item.is_file():
                    continue
                digest.update(item.relative_to(path).as_posix().encode("utf-8") + b"\x00")
                _update_file(digest, item)
    else:
        _update_file(digest, path)
    return digest.hexdigest()


def _update_file(digest: Any, path: Path) -> None:
    with path.open("rb") as handle:
        digest.update(str(os.fstat(handle.fileno()).st_size).encode() + b"\x00")
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)


def cache_key(content: str, settings_key: str) -> str:
    return hashlib.sha256(f"{CACHE_VERSION}\x00{settings_key}\x00{content}".encode()).hexdigest()[
        :32
    ]


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def load(cache_dir: Path, key: str, chunk_dir: Path) -> tuple[list[Chunk], DatasetReport] | None:
    """Materialize a cached entry into `chunk_dir`; None when absent or unreadable."""
    entry = cache_dir / key
    try:
        manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("version") != CACHE_VERSION:
            return None
        if chunk_dir.exists():
            shutil.rmtree(chunk_dir)
        chunk_dir.mkdir(parents=True)
        chunks = []
        for record in manifest["chunks"]:
            target = chunk_dir / record["file"]
            _link_or_copy(entry / "chunks" / record["file"], target)
            chunks.append(
                Chunk(
                    path=target,
                    source=record["source"],
                    index=int(record["index"]),
                    start=float(record["start"]),
                    duration=float(record["duration"]),
                    sample_rate=int(record["sample_rate"]),
                    channels=int(record["channels"]),
                    caption=record.get("caption"),
                )
            )
        report = report_from_dict(manifest["report"])
    except (OSError, KeyError, TypeError, ValueError):
        return None
    report.cached = True
    return chunks, report


def store(cache_dir: Path, key: str, chunks: list[Chunk], report: DatasetReport) -> None:
    """Add an entry (best effort: a full disk must not fail the job)."""
    entry = cache_dir / key
    if entry.exists():
        return
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache_dir))
        try:
            (tmp / "chunks").mkdir()
            for chunk in chunks:
                _link_or_copy(chunk.path, tmp / "chunks" / chunk.path.name)
            manifest = {
                "version": CACHE_VERSION,
                "report": report.to_dict(),
                "chunks": [
                    {
                        "file": c.path.name,
                        "source": c.source,
                        "index": c.index,
                        "start": c.start,
                        "duration": c.duration,
                        "sample_rate": c.sample_rate,
                        "channels": c.channels,
                        "caption": c.caption,
                    }
                    for c in chunks
                ],
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            os.rename(tmp, entry)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        return


def report_from_dict(data: dict[str, Any]) -> DatasetReport:
    return DatasetReport(
        files_seen=int(data["files_seen"]),
        files_used=list(data["files_used"]),
        files_rejected=[Rejected(r["path"], r["reason"]) for r in data["files_rejected"]],
        ignored=dict(data["ignored"]),
        chunks=int(data["chunks"]),
        minutes=float(data["minutes"]),
        dropped_silent_chunks=int(data["dropped_silent_chunks"]),
        dropped_duplicate_chunks=int(data["dropped_duplicate_chunks"]),
        clipping=list(data["clipping"]),
    )
