"""Fetch the dataset: a local path as it is, or a URL downloaded to the job's work dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from musicgen_ft.errors import DatasetError


@dataclass(frozen=True)
class FetchSettings:
    allow_private: bool = False
    max_bytes: int = 20 * 1024**3
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    max_redirects: int = 5


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def fetch(source: str, dest_dir: Path, settings: FetchSettings | None = None) -> Path:
    """Return a local path for `source` (downloading URLs into `dest_dir`)."""
    if is_url(source):
        raise DatasetError(f"dataset_path={source!r}: URL download is not available yet")
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(
            f"dataset_path={source!r} does not exist; give an HTTPS URL or an existing "
            "archive, folder or audio file"
        )
    return path.resolve()
