"""Vocal removal with a tiny random HTDemucs saved in Demucs's own format and loaded through
`demucs.pretrained.get_model`, the loader users hit; plus the up-front availability check."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from audio_fixtures import make_tiny_demucs, music, noise, write_audio

from musicgen_ft.errors import InputError, WeightsMissingError
from musicgen_ft.types import Chunk
from preprocessing.__main__ import main
from preprocessing.vocals import VocalSettings, check_available, load_model, remove_vocals

NAME = "tiny_htdemucs"


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # Two threads on two shared cores run this tiny model ~5x slower than one.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demucs_repo")
    make_tiny_demucs(folder, NAME)
    return folder


def _chunk(path: Path, audio: np.ndarray, rate: int, index: int = 0) -> Chunk:
    pcm = np.clip(np.rint(audio * 32767), -32768, 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), pcm, rate, subtype="PCM_16")
    return Chunk(
        path,
        "song.wav",
        index,
        2.0 * index,
        audio.shape[0] / rate,
        rate,
        audio.shape[1],
        caption="a caption",
    )


def _expected_vocals(model: object, mix: np.ndarray, rate: int) -> np.ndarray:
    """The model's vocal stem for one chunk, computed directly with Demucs's apply_model."""
    import torch
    from demucs.apply import apply_model

    wide = np.repeat(mix, 2, axis=1) if mix.shape[1] == 1 else mix
    x = torch.from_numpy(soxr.resample(wide, rate, 44100).T.copy())[None]
    ref = x.mean(1)
    mean, std = ref.mean(), ref.std()
    with torch.no_grad():
        out = apply_model(model, (x - mean) / std, shifts=0, split=True, overlap=0.25)
    vocals = (out[0, 3] * std + mean).numpy().T  # sources: drums, bass, other, vocals
    vocals = soxr.resample(vocals, 44100, rate)[: mix.shape[0]]
    return vocals.mean(axis=1, keepdims=True) if mix.shape[1] == 1 else vocals


def _read(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="float32", always_2d=True)[0]


@pytest.mark.parametrize("channels", [2, 1])
def test_output_is_the_mix_minus_the_vocal_stem(
    repo: Path, tmp_path: Path, channels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import demucs.pretrained

    loads: list[str] = []
    real = demucs.pretrained.get_model

    def counting(name: str, repo: Path | None = None) -> object:
        loads.append(name)
        return real(name, repo=repo)

    monkeypatch.setattr(demucs.pretrained, "get_model", counting)
    rate = 32000
    chunks = [
        _chunk(tmp_path / "in" / "a-0000.wav", music(2.0, rate, channels, seed=1) * 0.5, rate, 0),
        _chunk(tmp_path / "in" / "a-0001.wav", music(2.0, rate, channels, seed=2) * 0.5, rate, 1),
        _chunk(tmp_path / "in" / "b-0000.wav", noise(1.5, rate, channels, seed=3), rate, 0),
    ]
    settings = VocalSettings(
        model=NAME, repo=repo, device="cpu", batch_size=2, vocal_threshold_db=-200.0
    )
    out, info = remove_vocals(chunks, settings, tmp_path / "vocals")

    assert loads == [NAME]  # loaded once for the whole job, through Demucs's loader
    assert [c.chunk_id for c in out] == [c.chunk_id for c in chunks]
    for before, after in zip(chunks, out, strict=True):
        assert after.path == tmp_path / "vocals" / "chunks" / before.path.name
        assert (after.source, after.index, after.start, after.duration, after.caption) == (
            before.source,
            before.index,
            before.start,
            before.duration,
            before.caption,
        )
        got = sf.info(str(after.path))
        assert (got.samplerate, got.channels) == (rate, channels)
        assert got.frames == sf.info(str(before.path)).frames
    model = load_model(settings, tmp_path / "load")
    for i in (0, 2):
        mix = _read(chunks[i].path)
        expected = mix - _expected_vocals(model, mix, rate)
        result = _read(out[i].path)
        assert np.abs(result - mix).max() > 1e-3  # something was removed
        np.testing.assert_allclose(result, expected, atol=2e-3)
    assert info["applied"] is True and info["model"] == NAME and info["device"] == "cpu"
    assert info["chunks"] == 3 and info["processed"] == 3 and info["passed_through"] == []
    assert set(info["vocal_level_db"]) == {c.chunk_id for c in chunks}


def test_chunks_without_detectable_vocals_pass_through(repo: Path, tmp_path: Path) -> None:
    chunk = _chunk(tmp_path / "in" / "c-0000.wav", music(2.0, 32000, 1) * 0.5, 32000)
    settings = VocalSettings(model=NAME, repo=repo, device="cpu", vocal_threshold_db=200.0)
    out, info = remove_vocals([chunk], settings, tmp_path / "vocals")
    assert out[0].path.read_bytes() == chunk.path.read_bytes()
    assert info["passed_through"] == [chunk.chunk_id] and info["processed"] == 0


def test_separations_are_cached_by_chunk_content_weights_and_settings(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import preprocessing.vocals as vocals

    chunk = _chunk(tmp_path / "in" / "d-0000.wav", music(2.0, 32000, 1, seed=7) * 0.5, 32000)
    settings = VocalSettings(model=NAME, repo=repo, device="cpu", vocal_threshold_db=-200.0)
    cache = tmp_path / "cache"
    first, info1 = remove_vocals([chunk], settings, tmp_path / "one", cache_dir=cache)
    assert info1["cached"] == 0

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model must not be loaded when every chunk is cached")

    monkeypatch.setattr(vocals, "load_model", no_model)
    second, info2 = remove_vocals([chunk], settings, tmp_path / "two", cache_dir=cache)
    assert info2["cached"] == 1 and info2["device"] == "none"
    assert second[0].path.read_bytes() == first[0].path.read_bytes()
    assert info2["vocal_level_db"] == info1["vocal_level_db"]
    # The pass-through threshold applies on a hit too; other Demucs settings miss the cache.
    third, info3 = remove_vocals(
        [chunk],
        VocalSettings(model=NAME, repo=repo, vocal_threshold_db=200.0),
        tmp_path / "3",
        cache_dir=cache,
    )
    assert info3["passed_through"] == [chunk.chunk_id]
    assert third[0].path.read_bytes() == chunk.path.read_bytes()
    with pytest.raises(AssertionError, match="must not be loaded"):
        remove_vocals(
            [chunk],
            VocalSettings(model=NAME, repo=repo, overlap=0.5),
            tmp_path / "4",
            cache_dir=cache,
        )


def test_disabled_or_empty_does_nothing(tmp_path: Path) -> None:
    chunk = _chunk(tmp_path / "a.wav", music(1.0, 32000, 1), 32000)
    off = VocalSettings(enabled=False)
    check_available(off)  # no weights here, and none needed
    assert remove_vocals([chunk], off, tmp_path / "v") == ([chunk], {"applied": False})
    assert not (tmp_path / "v").exists()


def test_cli_with_a_local_demucs_repo(repo: Path, tmp_path: Path) -> None:
    write_audio(tmp_path / "ds" / "song.wav", music(5.5, seed=5))
    out = tmp_path / "out"
    code = main(
        [
            str(tmp_path / "ds"),
            "--model_version",
            "small",
            "--output_dir",
            str(out),
            "--demucs_model",
            NAME,
            "--demucs_repo",
            str(repo),
            "--device",
            "cpu",
            "--no_cache",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["vocal_removal"]["applied"] is True
    assert report["vocal_removal"]["model"] == NAME
    assert [c["path"] for c in report["chunk_files"]] == [
        f"vocals/chunks/{Path(report['chunk_files'][0]['path']).name}"
    ]


# --- availability: checked before any heavy work ---------------------------------------------


def test_missing_default_weights_name_the_file_the_place_and_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path / "models"))
    with pytest.raises(WeightsMissingError) as err:
        check_available(VocalSettings())
    message = str(err.value)
    assert "missing 955717e8-8726e21a.th" in message
    assert f"put it in {tmp_path / 'models' / 'demucs'}/" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "`musicgen-ft download-weights htdemucs`" in message


@pytest.mark.parametrize("where", ["torch_hub", "models_dir"])
def test_published_weights_are_found_in_the_torch_hub_cache_or_the_models_dir(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path / "models"))
    folder = (
        tmp_path / "torch" / "hub" / "checkpoints"
        if where == "torch_hub"
        else tmp_path / "models" / "demucs"
    )
    folder.mkdir(parents=True)
    (folder / "955717e8-8726e21a.th").write_bytes(b"stand-in; only its presence is checked")
    check_available(VocalSettings())
    with pytest.raises(WeightsMissingError) as err:
        check_available(VocalSettings(model="htdemucs_ft"))  # a bag of four, not in the table
    assert re.search(r"missing (\w+-\w+\.th, ){3}\w+-\w+\.th", str(err.value))
    assert "download https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/" in str(err.value)


def test_local_repo_problems_are_named(repo: Path, tmp_path: Path) -> None:
    check_available(VocalSettings(model=NAME, repo=repo))
    with pytest.raises(WeightsMissingError, match=r"'other' is not complete in .*other\.yaml"):
        check_available(VocalSettings(model="other", repo=repo))
    with pytest.raises(WeightsMissingError, match=r"is not a folder"):
        check_available(VocalSettings(model=NAME, repo=tmp_path / "nope"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bag.yaml").write_text("models: ['abcd1234']\n")
    with pytest.raises(WeightsMissingError, match=r"missing abcd1234\.th"):
        check_available(VocalSettings(model="bag", repo=broken))


def test_bad_settings_are_input_errors() -> None:
    with pytest.raises(InputError, match=r"unknown Demucs model 'nonsense'; choose one of .*mdx"):
        check_available(VocalSettings(model="nonsense"))
    with pytest.raises(InputError, match=r"batch_size=0 must be >= 1"):
        check_available(VocalSettings(batch_size=0))
    with pytest.raises(InputError, match=r"device='tpu'"):
        check_available(VocalSettings(device="tpu"))


def test_downloaded_checkpoints_load_through_a_repo_view_in_the_work_dir(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A models dir (or the torch hub cache) holds bare `<sig>-<sha>.th` files among others and no
    bag yaml: the job builds a folder with just the model's files plus its bag definition."""
    import shutil

    import preprocessing.vocals as vocals

    checkpoint = next(repo.glob("*.th"))
    models = tmp_path / "models"
    (models / "demucs").mkdir(parents=True)
    shutil.copy(checkpoint, models / "demucs" / checkpoint.name)
    (models / "demucs" / "unrelated-00000000.th").write_bytes(b"another model")
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(models))
    monkeypatch.setattr(
        vocals, "_published_files", lambda name: ([checkpoint.name], repo / f"{NAME}.yaml")
    )
    model = load_model(VocalSettings(model=NAME), tmp_path / "work")
    assert model.sources == ["drums", "bass", "other", "vocals"]
    view = tmp_path / "work" / "demucs_repo"
    assert sorted(p.name for p in view.iterdir()) == sorted([checkpoint.name, f"{NAME}.yaml"])
    assert (view / checkpoint.name).resolve() == (models / "demucs" / checkpoint.name).resolve()
