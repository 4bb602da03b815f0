"""Prepared-chunk cache: the chunks of a dataset, keyed by its content hash and the settings.

An entry (see `musicgen_ft.cache`) holds the chunk WAVs under `chunks/` and records the chunks
and the report. A hit links the chunks into the job's chunk folder, which is emptied first.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from musicgen_ft.cache import Cache, link_into
from musicgen_ft.types import Chunk, DatasetReport

# Bump when preparation changes what it produces for the same input and settings.
VERSION = "prep-4"


def prep_cache(root: Path) -> Cache:
    return Cache("prep", VERSION, root)


def _chunk_record(chunk: Chunk) -> dict[str, Any]:
    record = dataclasses.asdict(chunk)
    record["path"] = chunk.path.name
    return record


def load(cache: Cache, key: str, chunk_dir: Path) -> tuple[list[Chunk], DatasetReport] | None:
    """Link a cached entry's chunks into `chunk_dir`; None when absent or unreadable."""
    hit = cache.get(key)
    if hit is None:
        return None
    entry, record = hit
    try:
        if chunk_dir.exists():
            shutil.rmtree(chunk_dir)
        chunk_dir.mkdir(parents=True)
        chunks = []
        for item in record["chunks"]:
            target = chunk_dir / item["path"]
            link_into(entry / "chunks" / item["path"], target)
            chunks.append(Chunk(**{**item, "path": target}))
        report = DatasetReport.from_dict(record["report"])
    except (OSError, KeyError, TypeError, ValueError):
        return None
    report.cached = True
    return chunks, report


def store(cache: Cache, key: str, chunks: list[Chunk], report: DatasetReport) -> None:
    """Add an entry for a prepared dataset (best effort)."""

    def fill(folder: Path) -> None:
        for chunk in chunks:
            link_into(chunk.path, folder / "chunks" / chunk.path.name)

    record = {"report": report.to_dict(), "chunks": [_chunk_record(c) for c in chunks]}
    cache.put(key, record, fill)
