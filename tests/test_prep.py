"""Preparation end to end: generated archives with every format and the usual mess, loudness,
chunking, duplicates, silence, clipping, captions, the cache and the command line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from audio_fixtures import FORMATS, corrupt_mp3, music, noise, silence, tone, write_audio

from musicgen_ft.errors import DatasetError
from preprocessing.__main__ import main
from preprocessing.audio import PrepSettings, decode
from preprocessing.loudness import integrated_loudness, loudness_gain_db
from preprocessing.stage import prepare

ROOT = Path(__file__).resolve().parent.parent
MONO = PrepSettings(sample_rate=32000, channels=1)
STEREO = PrepSettings(sample_rate=32000, channels=2)
SECONDS = 6.0


def _dataset(folder: Path) -> Path:
    """Every format (nested), a caption, macOS junk, a 3 s file, a corrupt mp3, a silent file,
    a duplicate and a non-audio file."""
    for i, ext in enumerate(FORMATS):
        write_audio(folder / "Artist" / f"Album {i % 2}" / f"song{i}{ext}", music(SECONDS, seed=i))
    (folder / "Artist" / "Album 0" / "song0.txt").write_text("  dreamy\nsynth pop  \n")
    write_audio(folder / "intro.wav", music(3.0, seed=20))
    corrupt_mp3(folder / "broken.mp3")
    write_audio(folder / "room tone.flac", silence(SECONDS))
    write_audio(folder / "copy of song0.wav", music(SECONDS, seed=0))
    (folder / "__MACOSX" / "Artist").mkdir(parents=True)
    (folder / "__MACOSX" / "Artist" / "._song0.wav").write_bytes(b"\x00\x05\x16\x07")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "liner notes.pdf").write_bytes(b"%PDF-1.4")
    return folder


@pytest.fixture(scope="module")
def dataset_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = _dataset(tmp_path_factory.mktemp("src") / "My Dataset")
    archive = src.parent / "dataset.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(src.parent).as_posix())
    return archive


USED = [f"My Dataset/Artist/Album {i % 2}/song{i}{ext}" for i, ext in enumerate(FORMATS)]


def test_archive_with_every_format_and_the_usual_mess(dataset_zip: Path, tmp_path: Path) -> None:
    prepared = prepare(str(dataset_zip), MONO, tmp_path / "work", workers=2)
    report = prepared.report
    assert sorted(report.files_used) == sorted(USED)
    reasons = {r.path: r.reason for r in report.files_rejected}
    assert set(reasons) == {
        "My Dataset/intro.wav",
        "My Dataset/broken.mp3",
        "My Dataset/room tone.flac",
        "My Dataset/copy of song0.wav",
    }
    assert reasons["My Dataset/intro.wav"] == "too short: 3.0 s; files must be longer than 5 s"
    assert reasons["My Dataset/broken.mp3"].startswith("cannot decode")
    assert "/work/" not in reasons["My Dataset/broken.mp3"]
    assert reasons["My Dataset/room tone.flac"] == "the file is silent"
    assert reasons["My Dataset/copy of song0.wav"] == (
        "duplicate of My Dataset/Artist/Album 0/song0.wav"
    )
    assert report.ignored == {"macos_junk": 2, "not_audio": 1}
    assert report.files_seen == len(FORMATS) + 4
    assert report.chunks == len(FORMATS) == len(prepared.chunks)
    assert report.minutes == pytest.approx(len(FORMATS) * SECONDS / 60, abs=0.01)
    assert report.dropped_duplicate_chunks == 1
    for chunk in prepared.chunks:
        info = sf.info(str(chunk.path))
        assert (info.samplerate, info.channels, info.subtype) == (32000, 1, "PCM_16")
        assert info.frames / 32000 == pytest.approx(chunk.duration, abs=1e-3)
        assert chunk.duration == pytest.approx(SECONDS, abs=0.06)  # codec padding aside
        assert chunk.path.is_relative_to(tmp_path / "work" / "chunks")
        audio, _ = sf.read(str(chunk.path), dtype="float32", always_2d=True)
        lufs = pyloudnorm.Meter(32000).integrated_loudness(audio)
        peak_db = 20 * math.log10(float(np.abs(audio).max()))
        assert peak_db <= -0.99  # the ceiling holds
        # At the target, unless the ceiling lowered the gain (these fixtures are peaky).
        assert abs(lufs + 14.0) < 0.3 or (lufs < -14.0 and peak_db > -1.01)
    captions = {c.source: c.caption for c in prepared.chunks}
    assert captions["My Dataset/Artist/Album 0/song0.wav"] == "dreamy synth pop"
    assert captions["My Dataset/Artist/Album 1/song1.flac"] is None


@pytest.mark.parametrize("fmt", ["w:gz", "w"])
def test_tar_archives_prepare_the_same(fmt: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_audio(src / "a" / "b" / "deep.ogg", music(SECONDS, seed=3))
    (src / "a" / "b" / "deep.txt").write_text("deep cut")
    archive = tmp_path / ("data.tgz" if fmt == "w:gz" else "data.tar")
    with tarfile.open(archive, fmt) as out:  # type: ignore[call-overload]
        out.add(src / "a", arcname="a")
    prepared = prepare(str(archive), STEREO, tmp_path / "work", workers=1)
    assert prepared.report.files_used == ["a/b/deep.ogg"]
    assert prepared.chunks[0].caption == "deep cut"
    assert sf.info(str(prepared.chunks[0].path)).channels == 2


def test_long_files_are_cut_in_30s_chunks_and_short_tails_dropped(tmp_path: Path) -> None:
    write_audio(tmp_path / "ds" / "long.flac", music(67.0, sr=16000, channels=1), sr=16000)
    write_audio(tmp_path / "ds" / "tail4.flac", music(64.0, sr=16000, seed=1), sr=16000)
    prepared = prepare(str(tmp_path / "ds"), MONO, tmp_path / "work")
    by_source: dict[str, list[tuple[int, float, float]]] = {}
    for c in prepared.chunks:
        by_source.setdefault(c.source, []).append((c.index, c.start, round(c.duration, 3)))
    assert by_source == {
        "long.flac": [(0, 0.0, 30.0), (1, 30.0, 30.0), (2, 60.0, 7.0)],
        "tail4.flac": [(0, 0.0, 30.0), (1, 30.0, 30.0)],
    }
    assert len({c.chunk_id for c in prepared.chunks}) == 5


def test_silent_chunks_dropped_and_clipping_flagged(tmp_path: Path) -> None:
    body = np.concatenate([music(30.0, sr=16000), silence(30.0, sr=16000), music(8, sr=16000)])
    write_audio(tmp_path / "ds" / "gap.wav", body, sr=16000)
    clipped = np.clip(tone(8.0, sr=16000, amp=3.0), -1.0, 1.0)
    write_audio(tmp_path / "ds" / "loud.wav", clipped, sr=16000)
    prepared = prepare(str(tmp_path / "ds"), MONO, tmp_path / "work")
    report = prepared.report
    assert report.dropped_silent_chunks == 1
    assert [(c.source, c.index) for c in prepared.chunks] == [
        ("gap.wav", 0),
        ("gap.wav", 2),
        ("loud.wav", 0),
    ]
    assert report.clipping == ["loud.wav"]


def test_channels_follow_the_variant(tmp_path: Path) -> None:
    left_only = np.stack([tone(6.0, channels=1)[:, 0], np.zeros(int(6.0 * 44100))], axis=1)
    write_audio(tmp_path / "ds" / "stereo.wav", left_only)
    write_audio(tmp_path / "ds" / "mono.wav", noise(6.0, channels=1, seed=4))
    mono = prepare(str(tmp_path / "ds"), MONO, tmp_path / "m").chunks
    stereo = prepare(str(tmp_path / "ds"), STEREO, tmp_path / "s").chunks
    assert [sf.info(str(c.path)).channels for c in mono] == [1, 1]
    wide = {c.source: sf.read(str(c.path), always_2d=True)[0] for c in stereo}
    assert wide["mono.wav"].shape[1] == 2
    np.testing.assert_array_equal(wide["mono.wav"][:, 0], wide["mono.wav"][:, 1])
    assert np.abs(wide["stereo.wav"][:, 1]).max() == 0  # kept as is, not mixed
    assert np.abs(wide["stereo.wav"][:, 0]).max() > 0.1


def test_nothing_usable_explains_every_file(tmp_path: Path) -> None:
    write_audio(tmp_path / "ds" / "short.wav", music(2.0))
    corrupt_mp3(tmp_path / "ds" / "bad.mp3")
    with pytest.raises(DatasetError) as err:
        prepare(str(tmp_path / "ds"), MONO, tmp_path / "work")
    message = str(err.value)
    assert message.startswith("no usable audio in the dataset (")
    assert "bad.mp3: cannot decode" in message and "short.wav: too short: 2.0 s" in message


def test_archive_without_audio_is_a_clear_error(tmp_path: Path) -> None:
    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("readme.md", "hello")
        out.writestr("__MACOSX/._readme.md", "x")
    with pytest.raises(DatasetError, match=r"has no audio files \(ignored: 1 macos_junk, 1 not_"):
        prepare(str(archive), MONO, tmp_path / "work")


# --- loudness --------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "amplitude"), [(32000, 0.5), (44100, 0.1), (48000, 1.0)])
def test_integrated_loudness_of_a_reference_tone(rate: int, amplitude: float) -> None:
    """BS.1770: a full-scale 997 Hz sine in one channel measures -3.01 LUFS."""
    t = np.arange(rate * 5) / rate
    tone_ = (amplitude * np.sin(2 * math.pi * 997 * t))[:, None].astype(np.float32)
    expected = -3.01 + 20 * math.log10(amplitude)
    assert integrated_loudness(tone_, rate) == pytest.approx(expected, abs=0.05)


def test_silence_has_no_loudness_and_peaks_cap_the_gain() -> None:
    assert integrated_loudness(silence(2.0, channels=1), 44100) == -math.inf
    assert loudness_gain_db(silence(2.0, channels=1), 44100, -14.0, -1.0) is None
    clicks = np.zeros((44100 * 4, 1), dtype=np.float32)
    clicks[::4410] = 0.5  # very peaky, very quiet: the ceiling must win
    gain = loudness_gain_db(clicks, 44100, -14.0, -1.0)
    assert gain is not None
    assert 20 * math.log10(0.5) + gain == pytest.approx(-1.0, abs=1e-6)


def test_decoders_read_every_format(tmp_path: Path) -> None:
    for ext in FORMATS:
        path = write_audio(tmp_path / f"x{ext}", music(2.0, seed=1))
        audio, rate = decode(path)
        assert audio.dtype == np.float32 and audio.shape[1] == 2
        assert audio.shape[0] / rate == pytest.approx(2.0, abs=0.1), ext
        assert 0.05 < float(np.abs(audio).max()) <= 1.0, ext


# --- cache -----------------------------------------------------------------------------------


def test_second_prepare_reuses_the_cache(dataset_zip: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = prepare(str(dataset_zip), MONO, tmp_path / "one", cache_dir=cache)
    second = prepare(str(dataset_zip), MONO, tmp_path / "two", cache_dir=cache)
    assert not first.report.cached and second.report.cached
    assert not (tmp_path / "two" / "unpacked").exists()  # nothing was unpacked again
    assert second.report.files_used == first.report.files_used
    assert [r.reason for r in second.report.files_rejected] == [
        r.reason for r in first.report.files_rejected
    ]
    assert [(c.chunk_id, c.source, c.caption) for c in second.chunks] == [
        (c.chunk_id, c.source, c.caption) for c in first.chunks
    ]
    for a, b in zip(first.chunks, second.chunks, strict=True):
        assert b.path.is_relative_to(tmp_path / "two")
        assert a.path.read_bytes() == b.path.read_bytes()
    other = prepare(str(dataset_zip), STEREO, tmp_path / "three", cache_dir=cache)
    assert not other.report.cached
    assert sf.info(str(other.chunks[0].path)).channels == 2


def test_changed_content_misses_the_cache(tmp_path: Path) -> None:
    write_audio(tmp_path / "ds" / "a.wav", music(6.0, seed=1))
    cache = tmp_path / "cache"
    assert not prepare(str(tmp_path / "ds"), MONO, tmp_path / "w1", cache_dir=cache).report.cached
    assert prepare(str(tmp_path / "ds"), MONO, tmp_path / "w2", cache_dir=cache).report.cached
    (tmp_path / "ds" / "a.txt").write_text("new caption")
    third = prepare(str(tmp_path / "ds"), MONO, tmp_path / "w3", cache_dir=cache)
    assert not third.report.cached and third.chunks[0].caption == "new caption"


def test_editing_the_dataset_leaves_the_earlier_cache_entry_intact(tmp_path: Path) -> None:
    """A re-run into the same work dir after an edit rewrites its chunks, never the cache's."""
    dataset, cache, work = tmp_path / "ds", tmp_path / "cache", tmp_path / "work"
    write_audio(dataset / "a.wav", music(6.0, seed=1))
    write_audio(dataset / "b.wav", music(6.0, seed=2))
    first = prepare(str(dataset), MONO, work, cache_dir=cache)
    assert not first.report.cached
    hit = prepare(str(dataset), MONO, work, cache_dir=cache)  # the job now holds cache links
    assert hit.report.cached
    entries = [p for p in (cache / "prep").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    before = {p: p.read_bytes() for p in entries[0].rglob("*") if p.is_file()}
    assert all(not (p.stat().st_mode & 0o222) for p in before)  # entries are read-only

    write_audio(dataset / "a.wav", noise(6.0, seed=9))  # the user edits one file
    edited = prepare(str(dataset), MONO, work, cache_dir=cache)
    assert not edited.report.cached
    assert {p: p.read_bytes() for p in before} == before  # the first entry is unchanged
    new_a = next(c for c in edited.chunks if c.source == "a.wav").path.read_bytes()
    old_a = next(c for c in first.chunks if c.source == "a.wav")
    assert new_a != before[entries[0] / "chunks" / old_a.path.name]


# --- command line ----------------------------------------------------------------------------


def test_cli_writes_report_json(dataset_zip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(
        [
            str(dataset_zip),
            "--model_version",
            "stereo-small",
            "--output_dir",
            str(out),
            "--drop_vocals",
            "false",
            "--no_cache",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["files_used"]) == sorted(USED)
    assert {
        "path": "My Dataset/intro.wav",
        "reason": "too short: 3.0 s; files must be longer than 5 s",
    } in report["files_rejected"]
    assert isinstance(report["chunks"], int) and report["chunks"] == len(FORMATS)
    assert isinstance(report["minutes"], float) and report["minutes"] > 0.7
    assert report["vocal_removal"] == {"applied": False, "reason": "drop_vocals=false"}
    assert (report["sample_rate"], report["channels"]) == (32000, 2)
    files = [out / c["path"] for c in report["chunk_files"]]
    assert len(files) == report["chunks"] and all(f.is_file() for f in files)


def test_musicgen_ft_prepare_calls_the_same_main(tmp_path: Path) -> None:
    from musicgen_ft.cli import main as cli_main

    write_audio(tmp_path / "one.wav", music(6.0))
    out = tmp_path / "out"
    assert (
        cli_main(
            [
                "prepare",
                str(tmp_path / "one.wav"),
                "--model_version",
                "small",
                "--output_dir",
                str(out),
                "--drop_vocals",
                "false",
                "--no_cache",
            ]
        )
        == 0
    )
    assert json.loads((out / "report.json").read_text())["files_used"] == ["one.wav"]


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["missing.zip", "--model_version", "small"], 1, "does not exist; give an HTTPS URL"),
        (["x.zip", "--model_version", "large"], 2, "model_version=large is not trainable"),
        (["x.zip", "--model_version", "tiny"], 2, "unknown model_version='tiny'"),
        (["x.zip"], 2, "the following arguments are required: --model_version"),
        (["x.zip", "--model_version", "small", "--drop_vocals", "maybe"], 2, "not true or false"),
    ],
)
def test_cli_bad_input_is_one_clear_line(
    args: list[str], code: int, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--output_dir", str(tmp_path / "out")]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m preprocessing: error: ")
    assert expected in err[0]


def test_cli_stops_before_any_work_without_demucs_weights(
    dataset_zip: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Places with no Demucs weights (other tests may have put a stand-in in the shared ones).
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = tmp_path / "out"
    assert main([str(dataset_zip), "--model_version", "small", "--output_dir", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "955717e8-8726e21a.th" in err[0] and "musicgen-ft download-weights htdemucs" in err[0]
    assert "drop_vocals=false" in err[0]
    assert not out.exists()  # nothing fetched, unpacked or prepared


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "preprocessing",
            "https://127.0.0.1:1/x.zip",
            "--model_version",
            "small",
            "--output_dir",
            str(tmp_path / "out"),
            "--drop_vocals",
            "false",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "python -m preprocessing: error: dataset_path: https://127.0.0.1:1/x.zip: host "
        "127.0.0.1 is a non-public address (127.0.0.1); refusing it; if this private host is "
        "intended, turn on the private-URL switch (--allow_private_urls)"
    ]


def test_cli_downloads_from_a_private_url_only_when_allowed(
    dataset_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(dataset_zip.parent))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{dataset_zip.name}"
    try:
        common = ["--model_version", "small", "--drop_vocals", "false", "--no_cache"]
        assert main([url, "--output_dir", str(tmp_path / "a"), *common]) == 1
        assert "--allow_private_urls" in capsys.readouterr().err
        assert not (tmp_path / "a" / "fetch").exists()
        out = tmp_path / "b"
        assert main([url, "--output_dir", str(out), "--allow_private_urls", *common]) == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["files_used"]) == sorted(USED)
    assert report["dataset"] == url


def test_workers_start_clean_when_other_threads_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forking beside running threads can deadlock; the stage spawns its workers then."""
    import multiprocessing
    import threading

    import preprocessing.stage as stage

    methods: list[str | None] = []
    real = multiprocessing.get_context

    def recording(method: str | None = None) -> object:
        methods.append(method)
        return real(method)

    monkeypatch.setattr(stage.multiprocessing, "get_context", recording)

    for i in range(2):
        write_audio(tmp_path / "ds" / f"t{i}.wav", music(6.0, seed=30 + i))
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()
    try:
        prepared = prepare(str(tmp_path / "ds"), MONO, tmp_path / "work", workers=2)
    finally:
        release.set()
        other.join()
    assert prepared.report.files_used == ["t0.wav", "t1.wav"] and prepared.report.chunks == 2
    assert methods == ["spawn"]
