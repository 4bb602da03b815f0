"""Reviewed labels reach the manifest: per-file captions, reviewed overrides, auto labels."""

from __future__ import annotations

from pathlib import Path

from labeling import review
from labeling.merge import chunk_info
from musicgen_ft.inputs import TrainInputs
from musicgen_ft.types import Chunk, Labels, LabelScore


def chunk(source: str, caption: str | None = None) -> Chunk:
    return Chunk(
        path=Path(f"/x/{Path(source).stem}-0000.wav"),
        source=source,
        index=0,
        start=0.0,
        duration=30.0,
        sample_rate=32000,
        channels=1,
        caption=caption,
    )


def test_reviewed_file_overrides_the_automatic_labels(tmp_path: Path) -> None:
    reviewed = tmp_path / "labels.csv"
    reviewed.write_text(
        "source,chunk_id,key,scale,bpm,genres,moods,instruments,description\n"
        "a.wav,,D,minor,92,,epic; dark,strings; brass,\n"
    )
    overrides = review.load_overrides(reviewed)
    auto = Labels(key="C", scale="major", bpm=120.0, genres=[LabelScore("pop", 0.7)])
    c = chunk("a.wav")
    info = chunk_info(c, {c.chunk_id: auto}, overrides, None)
    assert info["key"] == "D minor" and info["bpm"] == 92.0
    assert info["genre"] == "pop"  # an empty cell keeps the automatic value
    assert info["moods"] == ["epic", "dark"]
    assert info["instrument"] == "strings, brass"  # a string, as MusicInfo reads it
    assert "D minor" in info["description"] and "92" in info["description"]


def test_captions_come_first_and_no_text_is_empty() -> None:
    inputs = TrainInputs(dataset_path="d", one_same_description="lofi beats")
    shared_text = inputs.one_same_description
    captioned = chunk_info(chunk("a.wav", caption="my own words"), {}, {}, shared_text)
    assert captioned["description"].startswith("my own words")
    shared = chunk_info(chunk("b.wav"), {}, {}, shared_text)
    assert shared["description"].startswith("lofi beats")
    bare = chunk_info(chunk("rainy_night_v2.wav"), {}, {}, None)
    assert bare["description"].strip()


def test_labels_file_can_be_a_url(tmp_path: Path) -> None:
    """A reviewed labels file given as a URL is fetched with the dataset's safe fetcher."""
    from serving_support import FileServer

    from preprocessing.fetch import FetchSettings, fetch

    (tmp_path / "labels.csv").write_text(
        "source,chunk_id,key,scale,bpm,genres,moods,instruments,description\na.wav,,E,major,,,,,\n"
    )
    server = FileServer(tmp_path)
    try:
        local = fetch(
            f"{server.url}/labels.csv", tmp_path / "got", FetchSettings(allow_private=True)
        )
        assert review.load_overrides(local)["a.wav"]["key"] == "E"
    finally:
        server.close()
