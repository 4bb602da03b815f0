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
