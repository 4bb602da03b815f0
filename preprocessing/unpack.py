"""Unpack a dataset archive safely and list its audio files."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from musicgen_ft.errors import DatasetError
from preprocessing.audio import AUDIO_EXTENSIONS


@dataclass
class Unpacked:
    """The dataset as a folder, with the audio files found in it.

    Attributes:
        root: Folder all relative paths are relative to.
        audio: Audio files (absolute), sorted by relative path.
        ignored: Counts of skipped entries by reason (macOS junk, hidden, non-audio).
    """

    root: Path
    audio: list[Path] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)


def unpack(path: Path, dest: Path) -> Unpacked:
    """Make `path` (archive, folder or one audio file) a folder of audio files."""
    if path.is_dir():
        return scan(path)
    if path.suffix.lower() in AUDIO_EXTENSIONS:
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / path.name
        if not target.exists():
            shutil.copyfile(path, target)
        return scan(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                _check_member_name(member.filename)
            archive.extractall(dest)
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            archive.extractall(dest, filter="data")
    else:
        raise DatasetError(
            f"{path.name}: not a zip or tar archive nor an audio file; give a .zip, .tar, "
            ".tar.gz/.tgz, .gz or a wav/mp3/flac file"
        )
    return scan(dest)


def _check_member_name(name: str) -> None:
    parts = Path(name).parts
    if name.startswith("/") or ".." in parts:
        raise DatasetError(f"archive member {name!r} points outside the archive; refusing it")


def scan(root: Path) -> Unpacked:
    result = Unpacked(root=root)
    for item in sorted(root.rglob("*")):
        if not item.is_file():
            continue
        rel = item.relative_to(root)
        if rel.parts[0] == "__MACOSX" or item.name == ".DS_Store":
            result.ignored["macos_junk"] = result.ignored.get("macos_junk", 0) + 1
        elif any(part.startswith(".") for part in rel.parts):
            result.ignored["hidden"] = result.ignored.get("hidden", 0) + 1
        elif item.suffix.lower() in AUDIO_EXTENSIONS:
            result.audio.append(item)
        elif item.suffix.lower() != ".txt":
            result.ignored["not_audio"] = result.ignored.get("not_audio", 0) + 1
    return result
