"""`download-weights` against a local HTTP server: checksums are verified, bad files refused."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicgen_ft import weights
from musicgen_ft.errors import FineTuneError, WeightsMissingError

PAYLOAD = b"pretend model weights\n" * 100


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    from serving_support import FileServer

    root = tmp_path / "www"
    (root / "heads").mkdir(parents=True)
    (root / "heads" / "model.onnx").write_bytes(PAYLOAD)
    files = FileServer(root)
    yield files.url
    files.close()


def _asset(url: str, sha: str) -> weights.Asset:
    return weights.Asset(
        name="test-asset",
        source="url",
        location=url,
        files=("heads/model.onnx",),
        sha256={"heads/model.onnx": sha},
        dest="test",
    )


def test_download_verifies_the_checksum(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path / "models"))
    good = hashlib.sha256(PAYLOAD).hexdigest()
    monkeypatch.setitem(weights.ASSETS, "test-asset", _asset(server, good))
    [path] = weights.download(["test-asset"])
    assert path == tmp_path / "models" / "test" / "heads" / "model.onnx"
    assert path.read_bytes() == PAYLOAD
    assert str(path) in (tmp_path / "models" / "checksums.json").read_text()


def test_a_corrupt_download_is_refused_and_removed(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path / "models"))
    monkeypatch.setitem(weights.ASSETS, "test-asset", _asset(server, "0" * 64))
    with pytest.raises(FineTuneError, match="does not match"):
        weights.download(["test-asset"])
    assert not list((tmp_path / "models").rglob("model.onnx*"))


def test_offline_download_says_so() -> None:
    with pytest.raises(WeightsMissingError, match="HF_HUB_OFFLINE"):
        weights.download(["t5-base"])


def test_cli_rejects_unknown_assets(capsys: pytest.CaptureFixture[str]) -> None:
    assert weights.main(["no-such-model"]) == 1
    assert "unknown asset 'no-such-model'" in capsys.readouterr().err
