"""The labeling stage end to end: real Essentia key/BPM, tiny ONNX stand-ins for the taggers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from labeling_audio import SR, drums, progression, write
from labeling_standins import CLASSES, EXPECTED, PERCUSSIVE, TONAL, build_all, build_effnet

from labeling import stage
from labeling.stage import LabelSettings
from labeling.taggers import Taggers
from musicgen_ft.types import Chunk


def _song(tmp_path: Path, name: str = "song") -> list[Chunk]:
    """A 24 s A-minor chord progression that a 128 BPM groove joins halfway, cut in two 12 s
    stereo chunks at 32 kHz: the first is chords alone (tonal to the stand-in taggers), the
    second chords and drums (percussive)."""
    import soxr

    groove = drums(128.0, seconds=24.0) * 0.8
    groove[: groove.size // 2] = 0.0
    music = progression("A", "minor", (0, 3, 4, 0), bars=12) + groove
    music = soxr.resample(music, SR, 32000).astype(np.float32)
    half = music.size // 2
    chunks = []
    for i, piece in enumerate((music[:half], music[half:])):
        path = write(tmp_path / f"{name}_{i:03d}.wav", piece, 32000, channels=2)
        chunks.append(Chunk(path, f"{name}.mp3", i, 12.0 * i, 12.0, 32000, 2))
    return chunks


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_all(tmp_path_factory.mktemp("models"))


def test_stage_with_standin_taggers(tmp_path: Path, models: Path):
    chunks = _song(tmp_path)
    result = stage.run(chunks, LabelSettings(models_dir=models), tmp_path / "labels")
    assert set(result.labels) == {c.chunk_id for c in chunks}
    first, second = (result.labels[c.chunk_id] for c in chunks)
    # Key and tempo are per source: identical on both chunks.
    assert (first.key, first.scale) == ("A", "minor") == (second.key, second.scale)
    assert first.bpm == second.bpm == pytest.approx(128.0, rel=0.04)
    # The taggers run per chunk, on what each chunk holds.
    for labels, audio_kind in ((first, TONAL), (second, PERCUSSIVE)):
        expected = EXPECTED[audio_kind]
        for kind in ("genres", "moods", "instruments"):
            assert [s.label for s in getattr(labels, kind)] == [expected[kind]], (audio_kind, kind)
            assert all(0 <= s.score <= 1 for s in getattr(labels, kind))
        assert labels.description == (
            f"{expected['genres'].capitalize()} track, {expected['moods']}, with "
            f"{expected['instruments']}, in A minor at {round(first.bpm)} BPM"
        )
    report = result.report
    assert report["unavailable"] == {}
    assert report["top"]["genres"] == {"ambient": 1, "techno": 1}
    assert report["keys"] == {"A minor": 2}
    saved = json.loads((tmp_path / "labels" / stage.LABELS_FILE).read_text())
    assert saved["labels"][chunks[0].chunk_id]["key"] == "A"
    # A second run with the same settings reuses the file.
    again = stage.run(chunks, LabelSettings(models_dir=models), tmp_path / "labels")
    assert again.report.get("cached") is True
    assert again.labels[chunks[0].chunk_id] == first


def test_missing_models_are_reported_and_key_bpm_continue(tmp_path: Path, caplog):
    chunks = _song(tmp_path)
    caplog.set_level(logging.WARNING, logger="labeling.stage")
    result = stage.run(chunks, LabelSettings(models_dir=tmp_path / "none"), tmp_path / "out")
    label = result.labels[chunks[0].chunk_id]
    assert label.key == "A" and label.bpm is not None
    assert label.genres == [] and label.moods == [] and label.instruments == []
    assert set(result.report["unavailable"]) == {"genres", "moods", "instruments"}
    assert "discogs-effnet-bsdynamic-1.onnx" in result.report["unavailable"]["genres"]
    assert "cannot produce genres" in caplog.text
    assert label.description == f"Music in A minor at {round(label.bpm)} BPM"


def test_missing_head_only_loses_its_kind(tmp_path: Path):
    build_effnet(tmp_path)
    taggers = Taggers(tmp_path)
    assert taggers.available == ["genres"]
    assert "mtg_jamendo_moodtheme" in taggers.missing["moods"]
    assert "mtg_jamendo_instrument" in taggers.missing["instruments"]


def test_wrong_class_count_is_an_unusable_model(tmp_path: Path):
    build_all(tmp_path)
    meta = tmp_path / "mtg_jamendo_moodtheme-discogs-effnet-1.json"
    meta.write_text(json.dumps({"classes": ["a", "b"]}))
    taggers = Taggers(tmp_path)
    assert "moods" not in taggers.available and "expected 56 classes" in taggers.missing["moods"]
    assert taggers.available == ["genres", "instruments"]


def test_models_in_the_publishers_subfolders_are_found(tmp_path: Path):
    nested = tmp_path / "feature-extractors" / "discogs-effnet"
    nested.mkdir(parents=True)
    build_effnet(nested)
    assert Taggers(tmp_path).available == ["genres"]


def test_thresholds_and_top_k(tmp_path: Path, models: Path):
    taggers = Taggers(models)
    scores = np.zeros(56, np.float32)
    calm, energetic = CLASSES["moods"][TONAL][0], CLASSES["moods"][PERCUSSIVE][0]
    scores[[calm, 7, energetic]] = [0.9, 0.3, 0.04]
    classes = taggers.classes["moods"]
    assert classes[7] == "class7"
    settings = LabelSettings(models_dir=models, class_thresholds={"moods:class7": 0.5})
    picked = stage.select("moods", scores, classes, settings)
    # class7 is under its own threshold, energetic under the moods threshold (0.05).
    assert [p.label for p in picked] == ["calm"]
    top1 = LabelSettings(top_k={"genres": 3, "moods": 1, "instruments": 4})
    assert len(stage.select("moods", scores, classes, top1)) == 1


def test_invalid_settings_name_the_field():
    from musicgen_ft.errors import InputError

    with pytest.raises(InputError, match="thresholds"):
        LabelSettings(thresholds={"moods": 1.5}).validate()
    with pytest.raises(InputError, match="unknown kinds"):
        LabelSettings(top_k={"tempo": 3}).validate()


def test_cli_prints_one_json_object_per_file(tmp_path: Path, models: Path, capsys):
    from labeling.__main__ import main

    chunks = _song(tmp_path)
    assert main([str(tmp_path), "--models", str(models)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(chunks)
    records = {Path(json.loads(line)["path"]).name: json.loads(line) for line in lines}
    assert sorted(records) == sorted(c.path.name for c in chunks)
    record = records[chunks[0].path.name]
    for field in (
        "path",
        "key",
        "scale",
        "key_strength",
        "bpm",
        "bpm_confidence",
        "genres",
        "moods",
        "instruments",
        "description",
    ):
        assert field in record
    assert record["scale"] == "minor" and record["genres"][0]["label"] == "ambient"
    assert records[chunks[1].path.name]["genres"][0]["label"] == "techno"


def test_label_reuse_notices_models_installed_later(tmp_path: Path) -> None:
    models = tmp_path / "essentia"
    models.mkdir()
    before = stage.LabelSettings(models_dir=models).fingerprint()
    assert stage.LabelSettings(models_dir=models).fingerprint() == before  # stable
    (models / "tagger.onnx").write_bytes(b"\x00" * 10)
    assert stage.LabelSettings(models_dir=models).fingerprint() != before
