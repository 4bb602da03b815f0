"""CLAP measures in the quality report: the model fetched by `download-weights clap` through the
hub's file API (tests/hub_server.py on 127.0.0.1) into the Hugging Face cache, found there and
loaded by `transformers` as the real one is; a stand-in trained here to tell tones from noise
(tests/hub_standins.py), so a measure wired to the wrong tensor or the wrong clip fails."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hub_server import COMMIT, HubServer
from hub_standins import CLAP_TEXTS, tiny_clap

from evaluation import clap, quality
from musicgen_ft.weights import ASSETS

ROOT = Path(__file__).resolve().parent.parent
SR = 32000
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The HF cache after `musicgen-ft download-weights clap` from the local hub."""
    base = tmp_path_factory.mktemp("clap")
    tiny_clap(base / "hub" / "laion" / "clap-htsat-unfused")
    server = HubServer(base / "hub")
    env = {
        **os.environ, "HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(base / "hf"), "HF_HUB_CACHE": str(base / "hf" / "hub"),
        "MUSICGEN_FT_MODELS": str(base / "models"),
    }  # fmt: skip
    try:
        run = subprocess.run(
            [sys.executable, "-m", "musicgen_ft.cli", "download-weights", "clap"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        server.close()
    assert run.returncode == 0, run.stderr[-2000:]
    assert any("/api/models/laion/clap-htsat-unfused" in r for r in server.requests)
    yield base / "hf" / "hub"


@pytest.fixture()
def space(fetched: Path, monkeypatch: pytest.MonkeyPatch) -> clap.ClapSpace:
    monkeypatch.setenv("HF_HUB_CACHE", str(fetched))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(fetched))
    loaded, why = clap.load_available("cpu")
    assert loaded is not None, why
    return loaded


def _write(path: Path, kind: str, seconds: float, seed: int) -> Path:
    t = np.arange(int(SR * seconds)) / SR
    rng = np.random.default_rng(seed)
    if kind == "tone":
        wav = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 900) * t)
    else:
        wav = 0.2 * rng.standard_normal(len(t))
    sf.write(path, wav.astype(np.float32), SR)
    return path


def test_the_fetched_model_is_found_in_the_hub_cache_at_its_commit(space: clap.ClapSpace) -> None:
    assert space.source == COMMIT
    assert space.sample_rate == 48000 and space.window == 480000
    assert len(ASSETS["clap"].files) == 8


def test_clips_are_cut_into_whole_windows(space: clap.ClapSpace) -> None:
    sr = space.sample_rate
    assert [len(w) / sr for w in space.cut(np.zeros(25 * sr))] == [10, 10, 5]
    assert [len(w) / sr for w in space.cut(np.zeros(11 * sr))] == [10]  # 1 s left: dropped
    assert [len(w) / sr for w in space.cut(np.zeros(sr))] == [1]  # the only window stays


def test_report_tells_the_clip_that_sounds_like_the_held_out_music(
    space: clap.ClapSpace, tmp_path: Path
) -> None:
    """Training and held-out chunks are tones; the fine-tune's clip is a copy of one training
    chunk and the base's is noise: the fine-tune is closer, agrees better with "a pure tone", and
    its nearest training chunk is the one it copies, as near as held-out tones are."""
    train = [_write(tmp_path / f"train{i}.wav", "tone", 12, i) for i in range(4)]
    held = [_write(tmp_path / f"held{i}.wav", "tone", 12, 10 + i) for i in range(2)]
    clips = {
        "00": {"finetuned": train[2], "base": _write(tmp_path / "b0.wav", "noise", 12, 20)},
        "01": {
            "finetuned": _write(tmp_path / "f1.wav", "tone", 12, 30),
            "base": _write(tmp_path / "b1.wav", "noise", 12, 31),
        },
    }
    report = quality.clap_report(space, clips, dict.fromkeys(clips, CLAP_TEXTS[0]), held, train)
    d = report["distance_to_held_out"]
    assert d["finetuned_closer"] and d["finetuned"] < d["base"], d
    agree = report["text_agreement"]
    assert agree["finetuned"] > agree["base"] + 0.3, agree
    [copy, other] = report["nearest_training_chunk"]["clips"]
    assert copy["nearest_chunk"] == "train2.wav" and copy["similarity"] > 0.999
    assert copy["base_similarity"] < copy["similarity"] - 0.3
    assert other["similarity"] > other["base_similarity"]
    assert report["nearest_training_chunk"]["held_out_reference"] > 0.9
    line = quality.summary(
        {"distance_to_held_out": {}, "memorisation": {"flagged": False, "clips": []},
         "clap": report}
    )  # fmt: skip
    assert "CLAP: closer (KAD" in line and "CLAP text agreement" in line


def test_text_agreement_follows_the_prompt(space: clap.ClapSpace, tmp_path: Path) -> None:
    noise = _write(tmp_path / "n.wav", "noise", 5, 1)
    tone = _write(tmp_path / "t.wav", "tone", 5, 2)
    clips = {"00": {"finetuned": noise, "base": tone}}
    asked_noise = quality.clap_report(space, clips, {"00": CLAP_TEXTS[1]}, [tone], [tone])
    asked_tone = quality.clap_report(space, clips, {"00": CLAP_TEXTS[0]}, [tone], [tone])
    assert asked_noise["text_agreement"]["finetuned"] > asked_noise["text_agreement"]["base"]
    assert asked_tone["text_agreement"]["finetuned"] < asked_tone["text_agreement"]["base"]
    # one window a side: too few for a distance, said so
    assert "note" in asked_noise["distance_to_held_out"]


def test_without_clap_the_report_says_how_to_add_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path / "models"))
    space, why = clap.load_available("cpu")
    assert space is None and "musicgen-ft download-weights clap" in why


def test_a_damaged_clap_folder_is_reported_not_fatal(
    fetched: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [snapshot] = (fetched / "models--laion--clap-htsat-unfused" / "snapshots").iterdir()
    local = tmp_path / "models" / "clap"
    local.mkdir(parents=True)
    for name in ASSETS["clap"].files:
        (local / name).write_bytes((snapshot / name).read_bytes())
    (local / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path / "models"))
    space, why = clap.load_available("cpu")
    assert space is None
    assert why.startswith(f"CLAP in {local} could not be loaded") and "\n" not in why
