"""Unpack a dataset safely and list its audio files.

The input is detected by content (magic bytes) as well as by name: zip, tar (plain, gzip, bzip2,
xz), a single gzip-compressed file, or one audio file. Extraction refuses absolute paths and `..`,
symlinks, hard links and devices, encrypted members, and stops at caps on member count, total
uncompressed size and compression ratio (zip bombs). Every refusal names the offending member,
and a refused archive leaves nothing behind: members are only ever written under `dest`.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from musicgen_ft.constants import AUDIO_EXTENSIONS
from musicgen_ft.errors import DatasetError

_BLOCK = 1 << 20
_FORMATS = "a .zip, .tar, .tar.gz/.tgz, .gz, a folder or one audio file"


@dataclass(frozen=True)
class UnpackSettings:
    """Caps that stop hostile or runaway archives.

    Attributes:
        max_members: Most entries an archive may hold.
        max_total_bytes: Most bytes all members may expand to.
        max_ratio: Highest uncompressed/compressed ratio, judged once `ratio_min_bytes` is passed
            (real audio compresses about 1.1x; a zip bomb thousands of times).
        ratio_min_bytes: Below this much output the ratio is not judged (tiny files of silence
            compress well and are harmless).
    """

    max_members: int = 20_000
    max_total_bytes: int = 40 * 1024**3
    max_ratio: float = 200.0
    ratio_min_bytes: int = 16 * 1024**2


@dataclass
class Unpacked:
    """The dataset as a folder, with the audio files found in it.

    Attributes:
        root: Folder all relative paths are relative to.
        audio: Audio files (absolute), sorted by relative path.
        ignored: Counts of skipped entries by reason (macos_junk, hidden, not_audio).
    """

    root: Path
    audio: list[Path] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)


# --- detection -------------------------------------------------------------------------------


def audio_extension(head: bytes) -> str | None:
    """The usual extension of an audio file starting with `head`, or None."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return ".wav"
    if head[:4] == b"fLaC":
        return ".flac"
    if head[:4] == b"OggS":
        return ".opus" if b"OpusHead" in head[:64] else ".ogg"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return ".aiff"
    if head[4:8] == b"ftyp":
        return ".m4a"
    if head[:3] == b"ID3":
        return ".mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return ".aac"  # ADTS
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return ".mp3"  # MPEG audio frame sync
    return None


def sniff(path: Path) -> str:
    """What `path` holds: zip, gzip, bzip2, xz, tar, audio, empty or unknown."""
    with path.open("rb") as handle:
        head = handle.read(512)
    if not head:
        return "empty"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh":
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[257:262] == b"ustar":
        return "tar"
    if audio_extension(head) is not None:
        return "audio"
    if path.suffix.lower() in AUDIO_EXTENSIONS:
        return "audio"  # let the decoder judge it and give the reason
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        return "zip"  # e.g. a zip with a preamble
    if tarfile.is_tarfile(path):
        return "tar"
    return "unknown"


# --- entry point -----------------------------------------------------------------------------


def unpack(path: Path, dest: Path, settings: UnpackSettings | None = None) -> Unpacked:
    """Make `path` (archive, folder or one audio file) a folder of audio files.

    Args:
        path: The fetched dataset.
        dest: Empty (or absent) folder to extract into; cleared first if it exists.
        settings: Extraction caps.

    Raises:
        DatasetError: for an empty, unknown, damaged or hostile input, naming the member.
    """
    settings = settings or UnpackSettings()
    if path.is_dir():
        return scan(path)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    kind = sniff(path)
    try:
        if kind == "empty":
            raise DatasetError(f"{path.name} is empty (0 bytes); give {_FORMATS}")
        if kind == "audio":
            _place_audio(path, dest)
        elif kind == "zip":
            _extract_zip(path, dest, settings)
        elif kind == "gzip" and not _gzip_holds_tar(path):
            _extract_gzip_file(path, dest, settings)
        elif kind in ("gzip", "bzip2", "xz", "tar"):
            _extract_tar(path, dest, settings)
        else:
            raise DatasetError(
                f"{path.name} is neither an archive nor an audio file (checked by content); "
                f"give {_FORMATS}"
            )
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return scan(dest)


def _place_audio(path: Path, dest: Path) -> None:
    with path.open("rb") as handle:
        head = handle.read(64)
    name = path.name
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        name = f"{path.stem or 'audio'}{audio_extension(head) or '.wav'}"
    target = dest / name
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)


# --- member checks ---------------------------------------------------------------------------


def member_path(name: str) -> PurePosixPath | None:
    """The safe relative path of an archive member, None for the archive root itself.

    Raises DatasetError for absolute paths, drive letters and `..` components.
    """
    if "\x00" in name:
        raise DatasetError(f"archive member {name!r} has a NUL byte in its name; refusing it")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise DatasetError(
            f"archive member {name!r} has an absolute path; refusing the archive "
            "(re-create it with relative paths)"
        )
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DatasetError(
            f"archive member {name!r} points outside the archive (..); refusing the archive"
        )
    return PurePosixPath(*parts) if parts else None


class _Budget:
    """Running totals against the caps."""

    def __init__(self, settings: UnpackSettings, compressed: int) -> None:
        self.settings = settings
        self.compressed = max(compressed, 1)
        self.members = 0
        self.written = 0

    def member(self, name: str) -> None:
        self.members += 1
        if self.members > self.settings.max_members:
            raise DatasetError(
                f"archive member {name!r}: the archive has more than "
                f"{self.settings.max_members} entries; split the dataset"
            )

    def add(self, name: str, amount: int) -> None:
        self.written += amount
        s = self.settings
        if self.written > s.max_total_bytes:
            raise DatasetError(
                f"archive member {name!r}: the archive expands to more than "
                f"{s.max_total_bytes / 1e9:.1f} GB; split the dataset"
            )
        if self.written > s.ratio_min_bytes and self.written / self.compressed > s.max_ratio:
            raise DatasetError(
                f"archive member {name!r}: the archive expands more than {s.max_ratio:g} times "
                "its size (a zip bomb?); refusing it"
            )


def _target(dest: Path, rel: PurePosixPath, name: str) -> Path:
    target = dest.joinpath(*rel.parts)
    root = dest.resolve()
    if not target.resolve().is_relative_to(root):  # belt and braces: parts were checked
        raise DatasetError(f"archive member {name!r} points outside the archive; refusing it")
    return target


def _copy(src: IO[bytes], target: Path, name: str, budget: _Budget, limit: int | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with target.open("xb") as out:
            for block in iter(lambda: src.read(_BLOCK), b""):
                written += len(block)
                if limit is not None and written > limit:
                    raise DatasetError(
                        f"archive member {name!r} holds more data than its header says; "
                        "refusing the archive"
                    )
                budget.add(name, len(block))
                out.write(block)
    except FileExistsError:
        raise DatasetError(f"archive member {name!r} appears twice; refusing the archive") from None
    except (NotADirectoryError, IsADirectoryError):
        raise DatasetError(
            f"archive member {name!r} clashes with another member's name; refusing the archive"
        ) from None


# --- zip -------------------------------------------------------------------------------------


def _extract_zip(path: Path, dest: Path, settings: UnpackSettings) -> None:
    budget = _Budget(settings, path.stat().st_size)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{path.name} is a damaged zip archive ({exc}); re-create it") from None
    with archive:
        infos = archive.infolist()
        declared = 0
        for info in infos:  # check everything before writing anything
            name = info.filename
            budget.member(name)
            member_path(name)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise DatasetError(f"archive member {name!r} is a symbolic link; refusing it")
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise DatasetError(f"archive member {name!r} is a device or special file")
            if info.flag_bits & 0x1:
                raise DatasetError(
                    f"archive member {name!r} is encrypted; re-create the archive without a "
                    "password"
                )
            declared += info.file_size
            if info.file_size > settings.ratio_min_bytes and (
                info.file_size > settings.max_ratio * max(info.compress_size, 1)
            ):
                ratio = info.file_size / max(info.compress_size, 1)
                raise DatasetError(
                    f"archive member {name!r} expands {ratio:.0f} "
                    f"times (limit {settings.max_ratio:g}; a zip bomb?); refusing the archive"
                )
        if declared > settings.max_total_bytes:
            raise DatasetError(
                f"{path.name} expands to {declared / 1e9:.1f} GB, more than the "
                f"{settings.max_total_bytes / 1e9:.1f} GB limit; split the dataset"
            )
        for info in infos:
            rel = member_path(info.filename)
            if rel is None:
                continue
            target = _target(dest, rel, info.filename)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            try:
                with archive.open(info) as src:
                    _copy(src, target, info.filename, budget, info.file_size)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise DatasetError(
                    f"archive member {info.filename!r} cannot be extracted ({exc}); re-create "
                    "the archive"
                ) from None


# --- tar -------------------------------------------------------------------------------------


def _gzip_holds_tar(path: Path) -> bool:
    try:
        with gzip.open(path, "rb") as handle:
            head = handle.read(512)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path.name} is a damaged gzip file ({exc}); re-create it") from None
    if len(head) == 512 and head[257:262] == b"ustar":
        return True
    if len(head) < 512 or audio_extension(head) is not None:
        return False
    try:  # v7 tars have no magic: check the header checksum
        tarfile.TarInfo.frombuf(head, tarfile.ENCODING, "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


def _members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while True:
        member = archive.next()
        if member is None:
            return
        yield member


def _extract_tar(path: Path, dest: Path, settings: UnpackSettings) -> None:
    budget = _Budget(settings, path.stat().st_size)
    try:
        with path.open("rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as archive:
            for member in _members(archive):
                name = member.name
                budget.member(name)
                rel = member_path(name)
                if member.issym() or member.islnk():
                    kind = "symbolic" if member.issym() else "hard"
                    raise DatasetError(
                        f"archive member {name!r} is a {kind} link to {member.linkname!r}; "
                        "refusing it"
                    )
                if member.isdev() or not (member.isfile() or member.isdir()):
                    raise DatasetError(f"archive member {name!r} is a device or special file")
                if rel is None:
                    continue
                target = _target(dest, rel, name)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                src = archive.extractfile(member)
                assert src is not None  # regular file
                _copy(src, target, name, budget, member.size)
    except DatasetError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DatasetError(
            f"{path.name} is a damaged or unsupported archive ({type(exc).__name__}: {exc}); "
            f"give {_FORMATS}"
        ) from None


def _extract_gzip_file(path: Path, dest: Path, settings: UnpackSettings) -> None:
    budget = _Budget(settings, path.stat().st_size)
    stem = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    try:
        with gzip.open(path, "rb") as src:
            head = src.read(64)
            src.seek(0)
            ext = Path(stem).suffix.lower()
            if ext not in AUDIO_EXTENSIONS:
                stem = f"{Path(stem).stem or 'audio'}{audio_extension(head) or ext or '.bin'}"
            member = member_path(stem) or PurePosixPath("audio.bin")
            _copy(src, _target(dest, member, stem), stem, budget, None)  # type: ignore[arg-type]
    except DatasetError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path.name} is a damaged gzip file ({exc}); re-create it") from None


# --- scan ------------------------------------------------------------------------------------


def scan(root: Path) -> Unpacked:
    """List the audio files under `root` (nested folders walked) and count what is skipped."""
    result = Unpacked(root=root)

    def skip(reason: str) -> None:
        result.ignored[reason] = result.ignored.get(reason, 0) + 1

    for folder, dirs, files in os.walk(root):
        for name in list(dirs):
            if name == "__MACOSX":
                dirs.remove(name)
                skip("macos_junk")
            elif name.startswith("."):
                dirs.remove(name)
                skip("hidden")
        dirs.sort()
        for name in sorted(files):
            item = Path(folder) / name
            if name == ".DS_Store" or name.startswith("._"):
                skip("macos_junk")
            elif name.startswith("."):
                skip("hidden")
            elif not item.is_file():
                skip("not_a_file")
            elif item.suffix.lower() in AUDIO_EXTENSIONS:
                result.audio.append(item)
            elif item.suffix.lower() != ".txt":  # captions are read beside their audio
                skip("not_audio")
    result.audio.sort(key=lambda p: p.relative_to(root).as_posix())
    return result
