"""Unpacking: every supported format and layout, detection by content, and hostile archives."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from audio_fixtures import music, write_audio

from musicgen_ft.errors import DatasetError
from preprocessing.unpack import UnpackSettings, audio_extension, member_path, sniff, unpack

SMALL = UnpackSettings(max_members=50, max_total_bytes=5_000_000, ratio_min_bytes=1_000_000)


@pytest.fixture(scope="module")
def wav_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = write_audio(tmp_path_factory.mktemp("src") / "a.wav", music(0.5, sr=8000))
    return path.read_bytes()


def _layout(wav: bytes) -> dict[str, bytes]:
    return {
        "album/disc 1/track1.wav": wav,
        "album/disc 1/track1.txt": b"warm lo-fi piano",
        "album/track2.wav": wav[:-2] + b"\x01\x02",
        "top.wav": wav,
        "__MACOSX/album/._track2.wav": b"\x00\x05\x16\x07",
        "album/.DS_Store": b"junk",
        ".hidden/secret.wav": wav,
        "cover.jpg": b"\xff\xd8\xff",
    }


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def _tar(path: Path, files: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _assert_layout(result_root: Path, audio: list[Path], ignored: dict[str, int]) -> None:
    assert [p.relative_to(result_root).as_posix() for p in audio] == [
        "album/disc 1/track1.wav",
        "album/track2.wav",
        "top.wav",
    ]
    assert ignored == {"macos_junk": 2, "hidden": 1, "not_audio": 1}
    assert (result_root / "album/disc 1/track1.txt").read_text() == "warm lo-fi piano"


BUILDERS: dict[str, Callable[[Path, dict[str, bytes]], Path]] = {
    "data.zip": _zip,
    "data.tar": lambda p, f: _tar(p, f, "w"),
    "data.tar.gz": lambda p, f: _tar(p, f, "w:gz"),
    "data.tgz": lambda p, f: _tar(p, f, "w:gz"),
    "data.tar.bz2": lambda p, f: _tar(p, f, "w:bz2"),
    "data.tar.xz": lambda p, f: _tar(p, f, "w:xz"),
    "misnamed.mp3": _zip,  # detection by content, not by name
    "no_extension": lambda p, f: _tar(p, f, "w:gz"),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_archives_unpack_with_nested_folders_captions_and_junk(
    name: str, wav_bytes: bytes, tmp_path: Path
) -> None:
    archive = BUILDERS[name](tmp_path / name, _layout(wav_bytes))
    result = unpack(archive, tmp_path / "work" / "unpacked")
    assert result.root == tmp_path / "work" / "unpacked"
    _assert_layout(result.root, result.audio, result.ignored)


def test_folder_is_scanned_in_place(wav_bytes: bytes, tmp_path: Path) -> None:
    for name, data in _layout(wav_bytes).items():
        (tmp_path / "ds" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "ds" / name).write_bytes(data)
    result = unpack(tmp_path / "ds", tmp_path / "work")
    assert result.root == tmp_path / "ds"
    _assert_layout(result.root, result.audio, result.ignored)
    assert not (tmp_path / "work").exists()


def test_single_gz_file_and_single_audio_file(wav_bytes: bytes, tmp_path: Path) -> None:
    gz = tmp_path / "song.wav.gz"
    gz.write_bytes(gzip.compress(wav_bytes))
    result = unpack(gz, tmp_path / "a")
    assert [p.name for p in result.audio] == ["song.wav"]
    assert result.audio[0].read_bytes() == wav_bytes

    nameless = tmp_path / "download"
    nameless.write_bytes(gzip.compress(wav_bytes))
    assert [p.name for p in unpack(nameless, tmp_path / "b").audio] == ["download.wav"]

    single = tmp_path / "one.flac"
    single.write_bytes(b"fLaC" + b"\x00" * 100)
    assert [p.name for p in unpack(single, tmp_path / "c").audio] == ["one.flac"]

    odd = tmp_path / "upload.bin"
    odd.write_bytes(wav_bytes)
    assert [p.name for p in unpack(odd, tmp_path / "d").audio] == ["upload.wav"]


def test_sniff_and_audio_extension(wav_bytes: bytes, tmp_path: Path) -> None:
    assert audio_extension(wav_bytes[:64]) == ".wav"
    assert audio_extension(b"OggS" + b"\x00" * 24 + b"OpusHead") == ".opus"
    assert audio_extension(b"ID3\x04") == ".mp3"
    assert audio_extension(b"\x00\x00\x00\x20ftypM4A ") == ".m4a"
    assert audio_extension(b"%PDF-1.4") is None
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    assert sniff(empty) == "empty"


# --- hostile and broken inputs ---------------------------------------------------------------


def _refused(archive: Path, tmp_path: Path, match: str, settings: UnpackSettings = SMALL) -> None:
    work = tmp_path / "work"
    before = {p for p in tmp_path.rglob("*")}
    with pytest.raises(DatasetError, match=match):
        unpack(archive, work / "unpacked", settings)
    after = {p for p in tmp_path.rglob("*")}
    created = {p for p in after - before if not p.is_relative_to(work)}
    assert created == set(), f"written outside the work dir: {created}"
    assert not (work / "unpacked").exists(), "a refused archive must leave nothing behind"


def test_zip_slip_is_refused_naming_the_member(wav_bytes: bytes, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "slip.zip", {"ok.wav": wav_bytes, "../../evil.wav": b"x"})
    _refused(archive, tmp_path, r"member '\.\./\.\./evil\.wav' points outside the archive")
    assert not list(tmp_path.parent.glob("evil.wav"))


def test_tar_slip_with_backslashes_is_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "slip.tar", {"a\\..\\..\\evil.wav": b"x"})
    _refused(archive, tmp_path, r"points outside the archive")


@pytest.mark.parametrize("name", ["/etc/evil.wav", "C:/evil.wav"])
def test_absolute_paths_are_refused(name: str, tmp_path: Path) -> None:
    archive = _tar(tmp_path / "abs.tar", {"fine.wav": b"x", name: b"x"})
    _refused(archive, tmp_path, rf"member '{name}' has an absolute path")
    zipped = _zip(tmp_path / "abs.zip", {name: b"x"})
    _refused(zipped, tmp_path, r"has an absolute path")


def test_tar_symlink_hardlink_and_device_members_are_refused(tmp_path: Path) -> None:
    for kind, extra, expected in (
        (tarfile.SYMTYPE, {"linkname": "/etc/passwd"}, r"'link\.wav' is a symbolic link"),
        (tarfile.LNKTYPE, {"linkname": "../x"}, r"'link\.wav' is a hard link"),
        (tarfile.CHRTYPE, {}, r"'link\.wav' is a device or special file"),
        (tarfile.FIFOTYPE, {}, r"'link\.wav' is a device or special file"),
    ):
        path = tmp_path / f"t{kind!r}.tar"
        with tarfile.open(path, "w") as archive:
            info = tarfile.TarInfo("link.wav")
            info.type = kind
            for key, value in extra.items():
                setattr(info, key, value)
            archive.addfile(info)
        _refused(path, tmp_path, expected)


def test_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("song.wav")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    _refused(path, tmp_path, r"'song\.wav' is a symbolic link")


def test_zip_bomb_is_refused_with_default_caps(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("song.wav", b"\x00" * (40 * 1024 * 1024))
    assert path.stat().st_size < 200_000
    _refused(path, tmp_path, r"'song\.wav' expands \d+ times .*zip bomb", UnpackSettings())


def test_tar_gz_bomb_stops_while_extracting(tmp_path: Path) -> None:
    path = _tar(tmp_path / "bomb.tar.gz", {"song.wav": b"\x00" * 3_000_000}, "w:gz")
    _refused(path, tmp_path, r"'song\.wav': the archive expands more than 200 times")


def test_total_size_and_member_count_caps(tmp_path: Path) -> None:
    big = _tar(tmp_path / "big.tar", {f"{i}.wav": b"\x01" * 1_000_000 for i in range(6)})
    _refused(big, tmp_path, r"'5\.wav': the archive expands to more than 0\.0 GB|more than 5")
    many = _zip(tmp_path / "many.zip", {f"{i}.wav": b"x" for i in range(60)})
    _refused(many, tmp_path, r"'50\.wav': the archive has more than 50 entries")


def test_zero_byte_archive_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "dataset.zip"
    path.write_bytes(b"")
    _refused(path, tmp_path, r"dataset\.zip is empty \(0 bytes\); give a \.zip")


def test_damaged_archives_and_unknown_files(wav_bytes: bytes, tmp_path: Path) -> None:
    good = _zip(tmp_path / "good.zip", {"a.wav": wav_bytes * 4})
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _refused(truncated, tmp_path, r"truncated\.zip is a damaged|cannot be extracted")
    tgz = _tar(tmp_path / "good.tgz", {"a.wav": bytes(range(256)) * 4000}, "w:gz")
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(tgz.read_bytes()[:-200])
    _refused(cut, tmp_path, r"cut\.tgz is a damaged")
    text = tmp_path / "readme.txt"
    text.write_text("hello")
    _refused(text, tmp_path, r"readme\.txt is neither an archive nor an audio file")


def test_duplicate_member_names_are_refused(tmp_path: Path) -> None:
    path = _tar(tmp_path / "dup.tar", {"a.wav": b"1"})
    with tarfile.open(path, "a") as archive:
        info = tarfile.TarInfo("./a.wav")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"2"))
    _refused(path, tmp_path, r"'\./a\.wav' appears twice")


def test_member_path_normalizes_harmless_forms() -> None:
    assert str(member_path("./a//b/./c.wav")) == "a/b/c.wav"
    assert member_path("./") is None
    with pytest.raises(DatasetError, match="NUL"):
        member_path("a\x00.wav")
