"""Descriptions, MusicInfo fields as AudioCraft reads them, label review and prompt guidance."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from labeling import review, vocabulary
from labeling.describe import compose_description, music_info
from musicgen_ft.errors import InputError
from musicgen_ft.types import Chunk, Labels, LabelScore

LABELS = Labels(
    key="F#", scale="minor", key_strength=0.8, bpm=124.3, bpm_confidence=0.9,
    genres=[LabelScore("deep house", 0.7), LabelScore("techno", 0.3)],
    moods=[LabelScore("dark", 0.2)],
    instruments=[LabelScore("synthesizer", 0.6), LabelScore("drums", 0.5)],
)  # fmt: skip


def chunk(caption: str | None = None, source: str = "Rainy Night_v2.wav") -> Chunk:
    return Chunk(Path("/x/rainy_000.wav"), source, 0, 0.0, 30.0, 32000, 2, caption)


def test_composed_description():
    assert compose_description(LABELS) == (
        "Deep house and techno track, dark, with synthesizer and drums, in F# minor at 124 BPM"
    )
    assert compose_description(Labels(bpm=90.0)) == "Music at 90 BPM"
    assert compose_description(Labels()) == ""


@pytest.mark.parametrize(
    ("caption", "shared", "append", "expected"),
    [
        ("lofi beat", "ignored", True, "lofi beat. Deep house"),
        ("lofi beat", None, False, "lofi beat"),
        (None, "epic trailer", True, "epic trailer. Deep house"),
        (None, "epic trailer", False, "epic trailer"),
        (None, "", True, "Deep house"),
        (None, None, True, "Deep house"),
    ],
)
def test_description_precedence(caption, shared, append, expected):
    info = music_info(chunk(caption), LABELS, shared, append_auto=append)
    assert info["description"].startswith(expected)


def test_no_text_at_all_falls_back_to_the_file_name():
    assert music_info(chunk(), None, "")["description"] == "rainy night v2"
    assert music_info(chunk(source="01.wav"), Labels(), None)["description"] == "music"
    assert music_info(chunk("x"), LABELS, "y", unconditional=True)["description"] == ""


def test_musicinfo_reads_every_field_and_keeps_instruments(monkeypatch):
    monkeypatch.setenv("USER", "root")
    from audiocraft.data.audio_dataset import AudioMeta
    from audiocraft.data.music_dataset import MusicInfo, augment_music_info_description

    info = music_info(chunk(), LABELS, None)
    info = json.loads(json.dumps(info))  # what the manifest writes and AudioCraft reads back
    meta = AudioMeta(path="/x/rainy_000.wav", duration=30.0, sample_rate=32000)
    audio_fields = {"meta": meta, "seek_time": 0.0, "n_frames": 10, "total_frames": 10,
                    "sample_rate": 32000, "channels": 2, "audio_tokens": None}  # fmt: skip
    parsed = MusicInfo.from_dict({**info, **audio_fields}, fields_required=True)
    assert parsed.instrument == "synthesizer, drums"
    assert parsed.genre == "deep house" and parsed.moods == ["dark"]
    assert parsed.key == "f# minor" and parsed.bpm == pytest.approx(124.3)
    text = parsed.to_condition_attributes().text
    assert text["instrument"] == "synthesizer, drums" and text["description"]
    # With the overrides we ask for (merge 0.25, drop_desc 0, drop_other 0.5) no text is empty.
    random.seed(0)
    for _ in range(300):
        out = augment_music_info_description(parsed, 0.25, 0.0, 0.5)
        assert out.description
    # AudioCraft's defaults (drop_desc 0.5) can leave an example without text.
    random.seed(0)
    bare = MusicInfo.from_dict({**info, "key": None, "bpm": None, "genre": None, "moods": [],
                                "instrument": None, "keywords": [], **audio_fields})  # fmt: skip
    emptied = [augment_music_info_description(bare, 1.0, 0.5, 0.5).description for _ in range(50)]
    assert None in emptied


def test_review_round_trip_csv_and_jsonl(tmp_path: Path):
    labels = {"a_000": LABELS, "a_001": LABELS, "b_000": Labels(key="C", scale="major")}
    sources = {"a_000": "a.wav", "a_001": "a.wav", "b_000": "dir/b.wav"}
    for name in ("labels.csv", "labels.jsonl"):
        rows = review.export_rows(labels, sources)
        assert [r["source"] for r in rows] == ["a.wav", "dir/b.wav"]
        rows[0]["bpm"] = "62"
        rows[0]["moods"] = ["calm", "sad"]
        rows[1]["genres"] = "-"  # clears the automatic genres
        rows[1]["key"] = ""
        review.write_rows(rows, tmp_path / name)
        overrides = review.load_overrides(tmp_path / name)
        assert overrides["a.wav"]["bpm"] == 62.0 and overrides["a.wav"]["moods"] == ["calm", "sad"]
        assert overrides["dir/b.wav"]["genres"] == [] and "key" not in overrides["dir/b.wav"]
        edited = review.apply_overrides(LABELS, "a.wav", "a_000", overrides)
        assert edited.bpm == 62.0 and [m.label for m in edited.moods] == ["calm", "sad"]
        assert (
            edited.description
            and "calm and sad" in edited.description
            and "62 BPM" in edited.description
        )
    per_chunk = review.export_rows(labels, sources, by="chunk")
    assert [r["chunk_id"] for r in per_chunk] == ["a_000", "a_001", "b_000"]


def test_review_rejects_bad_values(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("source,chunk_id,key,scale,bpm,genres,moods,instruments,description\n"
                   "a.wav,,C,dorian,,,,,\n")  # fmt: skip
    with pytest.raises(InputError, match="row 2: scale 'dorian'"):
        review.load_overrides(bad)
    bad.write_text("source,bpm\na.wav,fast\n")
    with pytest.raises(InputError, match="not a number"):
        review.load_overrides(bad)


def test_vocabulary_and_prompt_check():
    infos = [music_info(chunk(), LABELS, None) for _ in range(3)]
    infos.append(music_info(chunk("Rainy piano ballad"), Labels(key="C", scale="major"), None))
    vocab = vocabulary.build_vocabulary(infos)
    assert (
        "deep" in vocab["terms"] and "synthesizer" in vocab["terms"] and "the" not in vocab["terms"]
    )
    assert vocab["suggested_prompts"][0].startswith("Deep house")
    assert vocab["labels"]["instrument"]["drums"] == 3
    assert vocabulary.check_prompt("dark techno at night", vocab).ok
    miss = vocabulary.check_prompt("baroque harpsichord fugue", vocab)
    assert not miss.ok and "shares no word" in miss.message and "Deep house" in miss.message
