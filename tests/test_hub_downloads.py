"""`download-weights` through the doors a fresh machine uses: the Hugging Face file API (a local
stand-in on 127.0.0.1, reached through the standard `HF_ENDPOINT`), and `MUSICGEN_FT_MIRROR`
for every other download. Files kept in git (configs) are verified by their published git blob
id, LFS files by their SHA-256, plain downloads by our full pins."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import COMMIT, HubServer

from musicgen_ft import weights

ROOT = Path(__file__).resolve().parent.parent
T5_FILES = {
    "config.json": json.dumps({"model_type": "t5", "d_model": 768}).encode(),
    "spiece.model": b"sentencepiece stand-in" * 40,
    "tokenizer.json": json.dumps({"version": "1.0"}).encode(),
    "model.safetensors": b"\x00" * 4096,
}


@pytest.fixture()
def hub(tmp_path: Path) -> Iterator[Path]:
    repo = tmp_path / "hub" / "t5-base"
    repo.mkdir(parents=True)
    for name, data in T5_FILES.items():
        (repo / name).write_bytes(data)
    yield tmp_path / "hub"


def _download(tmp_path: Path, hub_url: str, *names: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "HF_ENDPOINT": hub_url,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
        "MUSICGEN_FT_MODELS": str(tmp_path / "models"),
        "TORCH_HOME": str(tmp_path / "torch"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "musicgen_ft.cli", "download-weights", *names],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_t5_downloads_with_its_git_kept_files_verified(hub: Path, tmp_path: Path) -> None:
    server = HubServer(hub)
    try:
        run = _download(tmp_path, server.url, "t5-base")
    finally:
        server.close()
    assert run.returncode == 0, run.stderr[-2000:]
    snapshot = tmp_path / "hf" / "hub" / "models--t5-base" / "snapshots" / COMMIT
    for name, data in T5_FILES.items():
        assert (snapshot / name).read_bytes() == data
    assert any("/api/models/t5-base" in r for r in server.requests)  # the published checksums


def test_a_tampered_hub_file_is_refused(hub: Path, tmp_path: Path) -> None:
    server = HubServer(hub, tamper=("config.json",))  # a git-kept file: no LFS checksum
    try:
        run = _download(tmp_path, server.url, "t5-base")
    finally:
        server.close()
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()[-1:]
    assert "config.json" in line and "does not match the published" in line
    assert not (tmp_path / "hf" / "hub" / "models--t5-base" / "blobs").exists() or not [
        p for p in (tmp_path / "hf" / "hub" / "models--t5-base" / "blobs").iterdir()
        if p.read_bytes().endswith(b"tampered")
    ]  # fmt: skip


def test_mirror_serves_plain_downloads_and_a_mismatch_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`https://HOST/PATH` comes from `$MUSICGEN_FT_MIRROR/HOST/PATH`; the pin still decides."""
    from serving_support import FileServer

    root = tmp_path / "mirror"
    good = b"tagger weights" * 100
    (root / "assets.example" / "models").mkdir(parents=True)
    (root / "assets.example" / "models" / "head.onnx").write_bytes(good)
    stand_in = b"not the published htdemucs"
    demucs = root / "dl.fbaipublicfiles.com" / "demucs" / "hybrid_transformer"
    demucs.mkdir(parents=True)
    (demucs / "955717e8-8726e21a.th").write_bytes(stand_in)
    files = FileServer(root)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MUSICGEN_FT_MIRROR", files.url)
    asset = weights.Asset(
        name="test-asset",
        source="url",
        location="https://assets.example/models",
        files=("head.onnx",),
        sha256={"head.onnx": hashlib.sha256(good).hexdigest()},
        dest="test",
    )
    monkeypatch.setitem(weights.ASSETS, "test-asset", asset)
    try:
        [path] = weights.download(["test-asset"])
        assert path.read_bytes() == good
        with pytest.raises(weights.FineTuneError, match="does not match"):
            weights.download(["htdemucs"])  # a stand-in cannot match the real pin
    finally:
        files.close()
    assert not list((tmp_path / "models").rglob("955717e8*"))
    assert not (tmp_path / "torch" / "hub" / "checkpoints").exists()


def test_a_prefilled_torch_hub_cache_serves_melody_conditioning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Demucs file the user placed in the models dir is linked where torch hub looks."""
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(weights.WeightsMissingError, match="download-weights htdemucs"):
        weights.ensure_chroma_demucs()  # offline (the test session) and nowhere to be found
    ours = tmp_path / "models" / "demucs" / "955717e8-8726e21a.th"
    ours.parent.mkdir(parents=True)
    ours.write_bytes(b"stand-in htdemucs")
    hub = weights.ensure_chroma_demucs()
    assert hub == tmp_path / "torch" / "hub" / "checkpoints" / ours.name
    assert hub.read_bytes() == b"stand-in htdemucs"


def test_download_weights_for_a_variant_fetches_the_whole_default_job() -> None:
    from musicgen_ft.variants import get_variant

    assert weights.assets_for_variant(get_variant("small")) == [
        "small", "t5-base", "htdemucs", "essentia",
    ]  # fmt: skip


def test_missing_taggers_are_named_before_any_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Offline (the test session) with no taggers: one warning names the files and the command;
    auto-labeling still runs (key and BPM)."""
    import logging

    with caplog.at_level(logging.WARNING, logger="musicgen_ft.weights"):
        weights.ensure_taggers(tmp_path / "essentia")
    [record] = [r for r in caplog.records if "auto-labeling" in r.getMessage()]
    assert "discogs-effnet-bsdynamic-1.onnx" in record.getMessage()
    assert "musicgen-ft download-weights essentia" in record.getMessage()


def test_taggers_that_cannot_be_reached_do_not_fail_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Online (no HF_HUB_OFFLINE) but the taggers' host cannot be reached, as on a machine
    without internet that did not say so: the download's error and the fix are logged and the
    job goes on (key and BPM only), as with the offline flag."""
    import logging
    import socket

    with socket.socket() as s:  # a port nothing listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(weights.MIRROR_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path / "models"))
    with caplog.at_level(logging.WARNING, logger="musicgen_ft.weights"):
        weights.ensure_taggers(tmp_path / "models" / "essentia")
    messages = [r.getMessage() for r in caplog.records]
    assert any("could not download the Essentia taggers" in m for m in messages), messages
    assert any("musicgen-ft download-weights essentia" in m for m in messages), messages


def test_the_weights_lock_pins_the_commit_and_the_bytes(hub: Path, tmp_path: Path) -> None:
    """The first download locks the commit and every file's SHA-256; a repository that moved is
    refused until `--update` accepts it; bytes that differ from the lock are refused."""
    lock = tmp_path / "team.lock.json"
    server = HubServer(hub)
    try:
        first = _download(tmp_path, server.url, "t5-base", MUSICGEN_FT_WEIGHTS_LOCK=str(lock))
        assert first.returncode == 0, first.stderr[-2000:]
        entry = json.loads(lock.read_text())["t5-base"]
        assert entry["commit"] == COMMIT
        assert entry["files"]["config.json"] == hashlib.sha256(T5_FILES["config.json"]).hexdigest()

        server.commit = "f" * 40  # main moved on the hub
        moved = _download(tmp_path, server.url, "t5-base", MUSICGEN_FT_WEIGHTS_LOCK=str(lock))
        assert moved.returncode == 1
        line = moved.stderr.strip().splitlines()[-1]
        assert f"locks t5-base at {COMMIT[:12]}" in line and "--update t5-base" in line
        assert json.loads(lock.read_text())["t5-base"]["commit"] == COMMIT  # unchanged

        accepted = _download(
            tmp_path, server.url, "--update", "t5-base", MUSICGEN_FT_WEIGHTS_LOCK=str(lock)
        )
        assert accepted.returncode == 0, accepted.stderr[-2000:]
        assert json.loads(lock.read_text())["t5-base"]["commit"] == "f" * 40

        # Another machine given this lock, where the hub now serves other bytes at that commit
        # (and publishes their checksums): the lock still refuses them.
        (hub / "t5-base" / "tokenizer.json").write_bytes(b'{"version": "2.0"}')
        other = tmp_path / "other"
        other.mkdir()
        again = _download(other, server.url, "t5-base", MUSICGEN_FT_WEIGHTS_LOCK=str(lock))
    finally:
        server.close()
    assert again.returncode == 1
    line = again.stderr.strip().splitlines()[-1]
    assert "tokenizer.json" in line and "weights lock" in line and "does not match" in line


def test_essentia_download_shows_its_licence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from serving_support import FileServer

    root = tmp_path / "mirror"
    host = root / "essentia.upf.edu" / "models"
    for rel in weights.ASSETS["essentia"].files:
        (host / rel).parent.mkdir(parents=True, exist_ok=True)
        (host / rel).write_bytes(b"stand-in tagger")
    files = FileServer(root)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("MUSICGEN_FT_MIRROR", files.url)
    # Prefilled (a stand-in cannot match the pins): the files are used as found, and the
    # licence is shown all the same.
    for rel in weights.ASSETS["essentia"].files:
        target = tmp_path / "models" / "essentia" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"stand-in tagger")
    try:
        with caplog.at_level(logging.WARNING, logger="musicgen_ft.weights"):
            weights.download(["essentia"])
    finally:
        files.close()
    [message] = [r.getMessage() for r in caplog.records if "CC BY-NC-SA 4.0" in r.getMessage()]
    assert "non-commercial" in message and "auto_labeling" in message


def test_a_job_online_fetches_the_vocal_remover_it_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """drop_vocals with no Demucs anywhere, online: the job downloads htdemucs before any work
    (here from a mirror whose stand-in cannot match the pin, so the pin refuses it)."""
    from serving_support import FileServer

    from preprocessing import vocals

    root = tmp_path / "mirror"
    demucs = root / "dl.fbaipublicfiles.com" / "demucs" / "hybrid_transformer"
    demucs.mkdir(parents=True)
    (demucs / "955717e8-8726e21a.th").write_bytes(b"not the published htdemucs")
    files = FileServer(root)
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("MUSICGEN_FT_MIRROR", files.url)
    settings = vocals.VocalSettings(enabled=True, model="htdemucs")
    check = lambda: vocals.check_available(settings)  # noqa: E731
    try:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(weights.WeightsMissingError, match="download-weights htdemucs"):
            weights.ensure_fetched(check, "htdemucs")  # offline: named, nothing fetched
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        # Only the mirror has these bytes: the mismatch proves the job went to fetch them.
        with pytest.raises(weights.FineTuneError, match=r"SHA-256 .* does not match"):
            weights.ensure_fetched(check, "htdemucs")
    finally:
        files.close()
    assert not list((tmp_path / "models").rglob("955717e8*"))
