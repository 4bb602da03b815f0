"""One cache scheme for every stage: content-hash keys, atomic and immutable entries.

An entry is a folder `<cache_root>/<kind>/<key>/` holding the files a stage produced and
`entry.json` (the kind, the version and the stage's record). The key hashes the kind, the
version of what the stage produces and every input that changes it (content hashes, settings,
the identity of the model used), so a changed input or a bumped version is simply another key.

Entries are built in a temporary folder and renamed into place (a killed job never leaves half
an entry), and their files are made read-only. A job receives links to them through `link_into`,
and every writer in the project replaces files (write beside, then rename) instead of
rewriting them in place, so nothing a job does can change an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from musicgen_ft.paths import cache_root

ENTRY_FILE = "entry.json"
_BLOCK = 1 << 20
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def make_key(kind: str, version: str, *parts: str) -> str:
    """A key over the kind, the version and every input that changes the entry."""
    digest = hashlib.sha256()
    for part in (kind, version, *parts):
        digest.update(part.encode("utf-8") + b"\x00")
    return digest.hexdigest()[:32]


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


class Cache:
    """The entries of one kind (e.g. "prep", "vocals") under a root folder."""

    def __init__(self, kind: str, version: str, root: Path | None = None) -> None:
        self.kind = kind
        self.version = version
        self.dir = (root or cache_root()) / kind

    def key(self, *parts: str) -> str:
        return make_key(self.kind, self.version, *parts)

    def get(self, key: str) -> tuple[Path, dict[str, Any]] | None:
        """The entry folder and its record, or None when absent, partial or of another version."""
        entry = self.dir / key
        try:
            data = json.loads((entry / ENTRY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("kind") != self.kind or data.get("version") != self.version:
            return None
        record = data.get("record")
        return (entry, record) if isinstance(record, dict) else None

    def put(self, key: str, record: dict[str, Any], fill: Callable[[Path], object]) -> bool:
        """Add an entry: `fill(folder)` writes its files; best effort (a full disk is no error).

        Returns whether the entry exists afterwards. An existing entry is never replaced.
        """
        entry = self.dir / key
        if entry.exists():
            return True
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.dir))
        except OSError:
            return False
        try:
            fill(tmp)
            data = {"kind": self.kind, "version": self.version, "record": record}
            (tmp / ENTRY_FILE).write_text(json.dumps(data, indent=1), encoding="utf-8")
            _freeze(tmp)
            os.rename(tmp, entry)
            return True
        except OSError:
            return entry.exists()
        finally:
            if tmp.exists():
                _thaw(tmp)
                shutil.rmtree(tmp, ignore_errors=True)


def _freeze(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(_READ_ONLY)


def _thaw(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def link_into(src: Path, dst: Path) -> None:
    """Give a job `dst` with the content of the entry file `src` (hard link, else a copy).

    `dst` is replaced, never written through: an old link at `dst` leaves its entry untouched.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
