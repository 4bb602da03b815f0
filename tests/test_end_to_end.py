"""The spine: Cog's train() on a generated archive → trained_model.tar → predict.py."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from musicgen_ft.variants import LM_FILE

pytestmark = pytest.mark.slow


def test_tar_is_a_real_archive_with_the_documented_members(trained: Path) -> None:
    assert trained.name == "trained_model.tar"
    assert tarfile.is_tarfile(trained)
    with tarfile.open(trained) as tar:
        names = sorted(tar.getnames())
        meta = json.loads(tar.extractfile("metadata.json").read())  # type: ignore[union-attr]
        cfg = tar.extractfile("xp.cfg").read().decode()  # type: ignore[union-attr]
        curves_csv = tar.extractfile("curves/loss.csv").read().decode()  # type: ignore[union-attr]
        png = tar.extractfile("curves/loss.png").read()  # type: ignore[union-attr]
        clips = {n: tar.extractfile(n).read() for n in names if n.startswith("samples/")}  # type: ignore[union-attr]
        quality = json.loads(tar.extractfile("quality.json").read())  # type: ignore[union-attr]
    assert names == [
        "curves/loss.csv", "curves/loss.png", "metadata.json", "quality.json",
        "samples/00_base.wav", "samples/00_finetuned.wav",
        "samples/01_base.wav", "samples/01_finetuned.wav",
        "state_dict.bin", "xp.cfg",
    ]  # fmt: skip
    # Listening samples: fine-tune and base on the same prompt and seed, listed in metadata.
    samples = meta["samples"]
    assert [s["finetuned"] for s in samples] == [
        "samples/00_finetuned.wav",
        "samples/01_finetuned.wav",
    ]
    assert samples[0]["source"] == "held-out description" and samples[0]["prompt"]
    assert len({s["prompt"] for s in samples}) == 2 and samples[0]["seed"] == 2036
    for data in clips.values():
        audio, rate = sf.read(io.BytesIO(data))
        assert rate == 32000 and len(audio) == 32000 and np.abs(audio).max() > 0
    assert clips["samples/00_base.wav"] != clips["samples/00_finetuned.wav"]
    # The quality report: distances for both models, memorisation per clip, the best epoch.
    distance = quality["distance_to_held_out"]
    assert distance["finetuned"] != distance["base"] and distance["space"].startswith("base")
    assert [c["clip"] for c in quality["memorisation"]["clips"]] == ["00", "01"]
    assert not quality["memorisation"]["flagged"]  # three updates copy nothing
    assert quality["best_epoch"]["of"] == len(meta["history"])
    assert meta["quality"]["summary"].startswith("quality: ")
    # Curves: per logged step and per epoch, train and held-out, as CSV and PNG.
    rows = list(csv.DictReader(io.StringIO(curves_csv)))
    kinds = {(r["kind"], r["split"]) for r in rows}
    assert kinds == {("step", "train"), ("epoch", "train"), ("epoch", "valid")}
    assert all(float(r["ce"]) > 0 for r in rows)
    assert png.startswith(b"\x89PNG") and meta["curves"] == {
        "csv": "curves/loss.csv", "png": "curves/loss.png"
    }  # fmt: skip
    assert "solver: musicgen" in cfg
    assert meta["model_version"] == "debug"
    assert meta["inputs"]["updates_per_epoch"] == 3
    dataset = meta["dataset"]
    assert dataset["files_used"] == [
        "album/bright_arpeggio.wav",
        "minor_groove.flac",
        "warm_pad_in_c.wav",
    ]
    assert dataset["chunks"] == 3 and dataset["minutes"] == pytest.approx(0.6, abs=0.01)
    assert meta["split"]["train"] == 2 and meta["split"]["valid"] == 1
    assert set(meta["timings"]) >= {"check", "prepare", "manifest", "train"}
    assert meta["versions"]["audiocraft"] == "1.3.0"
    # Key and BPM come from Essentia's algorithms; the pretrained taggers are absent offline,
    # and the report says so instead of pretending.
    vocals = dataset["vocal_removal"]
    assert vocals["applied"] is True and vocals["model"] == "htdemucs"
    labeling = dataset["labeling"]
    assert set(labeling["unavailable"]) == {"genres", "moods", "instruments"}
    assert labeling["keys"] and labeling["bpm_histogram"]
    assert meta["history"] and "train" in meta["history"][-1]
    assert not list(trained.parent.glob(".trained_model.tar.*"))  # no temp file left


def test_three_updates_change_the_weights(
    trained: Path, debug_model_dir: Path, tmp_path: Path
) -> None:
    with tarfile.open(trained) as tar:
        tar.extract(LM_FILE, tmp_path, filter="data")
    tuned = torch.load(tmp_path / LM_FILE, weights_only=True)["best_state"]
    base = torch.load(debug_model_dir / LM_FILE, weights_only=True)["best_state"]
    assert tuned.keys() == base.keys()
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    # The transformer's weights moved, not just a stray buffer.
    assert any("transformer.layers" in k for k in changed)
    assert len(changed) > len(base) // 2
    biggest = max(float((base[k] - tuned[k]).abs().max()) for k in changed)
    assert biggest > 1e-4


def test_predictor_generates_with_the_fine_tune(trained: Path) -> None:
    from cog import Path as CogPath

    import predict

    predictor = predict.Predictor()
    predictor.setup(weights=CogPath(trained))
    assert predictor.loaded.metadata["model_version"] == "debug"
    out = predictor.predict(
        prompt="warm ambient pad in C major",
        input_audio=None,
        duration=2.0,
        continuation=False,
        continuation_start=0.0,
        continuation_end=None,
        normalization_strategy="loudness",
        top_k=250,
        top_p=0.0,
        temperature=1.0,
        classifier_free_guidance=3.0,
        output_format="wav",
        seed=3,
        replicate_weights=None,
    )
    info = sf.info(str(out))
    assert (info.samplerate, info.channels) == (32000, 1)
    assert info.duration == pytest.approx(2.0, abs=0.05)


def test_predict_cli_continues_audio(trained: Path, tmp_path: Path) -> None:
    from inference.cli import main

    prompt = tmp_path / "prompt.wav"
    sf.write(prompt, 0.2 * torch.sin(torch.arange(32000 * 2) / 20.0).numpy(), 32000)
    out = tmp_path / "continued.mp3"
    code = main(
        [
            "--weights",
            str(trained),
            "--prompt",
            "bright chords",
            "--duration",
            "3",
            "--input_audio",
            str(prompt),
            "--continuation",
            "--continuation_end",
            "1.0",
            "--output",
            str(out),
            "--seed",
            "1",
        ]
    )
    assert code == 0
    info = sf.info(str(out))
    assert info.samplerate == 32000 and info.duration == pytest.approx(3.0, abs=0.1)


def test_the_tar_carries_the_vocabulary_and_predict_warns_off_it(
    trained: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from inference.generate import warn_if_prompt_is_off_vocabulary
    from inference.loading import load_model

    loaded = load_model(trained)
    vocabulary = loaded.metadata["vocabulary"]
    assert "ambient" in vocabulary["terms"] and vocabulary["suggested_prompts"]
    with caplog.at_level("WARNING"):
        assert warn_if_prompt_is_off_vocabulary(loaded, "xylophone polka") is True
    assert "shares no word" in caplog.text
    assert warn_if_prompt_is_off_vocabulary(loaded, "a warm ambient pad") is False


def test_stereo_fine_tune_with_interleaved_codebooks(example_archive: Path, tmp_path: Path) -> None:
    """Stereo variants train and generate two channels (tiny model, same code path)."""
    from spine_support import quick_inputs

    from inference.generate import GenerateParams, generate
    from inference.loading import load_model
    from musicgen_ft.pipeline import run_job

    inputs = quick_inputs(example_archive, model_version="debug-stereo")
    result = run_job(inputs, tmp_path)
    # From the base checkpoint's own config (training/base_config.py).
    assert "++interleave_stereo_codebooks.use=true" in result.metadata["training"]["overrides"]
    loaded = load_model(result.tar_path)
    wav = generate(loaded, GenerateParams(prompt="stereo chords", duration=1.0, seed=0))
    assert tuple(wav.shape) == (2, 32000)
