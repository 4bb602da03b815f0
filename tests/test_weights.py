"""Base-model resolution: local models dir, Hugging Face cache layout, clear offline errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from musicgen_ft.errors import WeightsMissingError
from musicgen_ft.variants import COMPRESSION_FILE, LM_FILE, get_variant
from musicgen_ft.weights import (
    check_text_conditioner,
    ensure_variant_weights,
    resolve_base_model,
)


def test_missing_weights_offline_fail_at_once_naming_files_and_command() -> None:
    with pytest.raises(WeightsMissingError) as err:
        ensure_variant_weights(get_variant("stereo-medium"))
    message = str(err.value)
    assert LM_FILE in message and COMPRESSION_FILE in message
    assert "musicgen-ft download-weights stereo-medium" in message
    assert "facebook/musicgen-stereo-medium" in message


def _fill_hf_cache(repo: str, files: list[Path]) -> Path:
    cache = Path(os.environ["HF_HUB_CACHE"])
    folder = cache / ("models--" + repo.replace("/", "--"))
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(revision)
    for path in files:
        shutil.copyfile(path, snapshot / path.name)
    return snapshot


def test_released_format_loads_from_the_hugging_face_cache(debug_model_dir: Path) -> None:
    """A tiny model in the released format, placed where the hub client caches
    facebook/musicgen-small, is found and loaded through AudioCraft's own loader."""
    from audiocraft.models import MusicGen

    snapshot = _fill_hf_cache(
        "facebook/musicgen-small", [debug_model_dir / LM_FILE, debug_model_dir / COMPRESSION_FILE]
    )
    found = resolve_base_model(get_variant("small"))
    assert found.resolve() == snapshot.resolve()
    model = MusicGen.get_pretrained(str(found), device="cpu")
    model.set_generation_params(duration=1.0, top_k=10)
    wav = model.generate(["test"])
    assert wav.shape == (1, 1, 32000)


def test_text_encoder_is_checked_before_training() -> None:
    with pytest.raises(WeightsMissingError) as err:
        check_text_conditioner(get_variant("small"))
    assert "t5-base" in str(err.value) and "download-weights t5-base" in str(err.value)


def test_models_dir_wins_over_the_cache(
    debug_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path))
    local = tmp_path / "medium"
    local.mkdir()
    for name in (LM_FILE, COMPRESSION_FILE):
        shutil.copyfile(debug_model_dir / name, local / name)
    assert resolve_base_model(get_variant("medium")) == local


def test_debug_model_is_in_the_released_format(debug_model_dir: Path) -> None:
    for name in (LM_FILE, COMPRESSION_FILE):
        # Released checkpoints load with torch's safe loader: plain types only.
        pkg = torch.load(debug_model_dir / name, map_location="cpu", weights_only=True)
        assert set(pkg) == {"best_state", "xp.cfg", "version", "exported"}
        assert isinstance(pkg["xp.cfg"], str) and pkg["exported"] is True


def test_debug_model_build_is_deterministic(debug_model_dir: Path, tmp_path: Path) -> None:
    from training.debug_model import build_debug_model

    other = build_debug_model(tmp_path / "again")
    for name in (LM_FILE, COMPRESSION_FILE):
        a = torch.load(debug_model_dir / name, weights_only=True)["best_state"]
        b = torch.load(other / name, weights_only=True)["best_state"]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_fine_tunes_extract_safely_on_pythons_without_the_data_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian bookworm's Python 3.11.2 (the image's base) has no tarfile.data_filter."""
    import io
    import tarfile

    from inference.loading import _extract_safely

    archive = tmp_path / "x.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("state_dict.bin", "../escape.bin", "/abs.bin"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    monkeypatch.delattr(tarfile, "data_filter")
    with tarfile.open(archive) as tar:
        _extract_safely(tar, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["state_dict.bin"]
    assert not (tmp_path / "escape.bin").exists()
