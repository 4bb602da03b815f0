from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from labeling.describe import music_info
from musicgen_ft.types import Chunk
from training.manifest import split_by_source, write_manifest


def make_chunks(tmp: Path, sources: dict[str, int]) -> list[Chunk]:
    chunks = []
    for source, count in sources.items():
        for index in range(count):
            path = tmp / f"{Path(source).stem}-{index:04d}.wav"
            audio = 0.1 * np.sin(np.arange(32000 * 6) * (index + 1) / 50.0)
            sf.write(path, audio.astype(np.float32), 32000)
            chunks.append(
                Chunk(
                    path=path,
                    source=source,
                    index=index,
                    start=30.0 * index,
                    duration=6.0,
                    sample_rate=32000,
                    channels=1,
                    caption=f"caption of {source}",
                )
            )
    return chunks


def test_validation_holds_out_whole_sources(tmp_path: Path) -> None:
    chunks = make_chunks(tmp_path, {f"s{i}.wav": 2 for i in range(12)})
    train, valid, note = split_by_source(chunks, seed=0)
    assert valid and train
    assert {c.source for c in train}.isdisjoint({c.source for c in valid})
    assert len(train) + len(valid) == len(chunks)
    assert "held out" in note


def test_single_source_holds_out_its_last_chunk(tmp_path: Path) -> None:
    chunks = make_chunks(tmp_path, {"only.wav": 3})
    train, valid, _ = split_by_source(chunks, seed=0)
    assert [c.index for c in valid] == [2] and [c.index for c in train] == [0, 1]


def test_single_chunk_says_validation_is_not_held_out(tmp_path: Path) -> None:
    chunks = make_chunks(tmp_path, {"only.wav": 1})
    _, _, note = split_by_source(chunks, seed=0)
    assert "no held-out data" in note


def test_audiocraft_reads_the_manifest_and_infos(tmp_path: Path) -> None:
    from audiocraft.data.music_dataset import MusicDataset

    (tmp_path / "c").mkdir()
    chunks = make_chunks(tmp_path / "c", {"a.wav": 2, "b.wav": 1, "c/d.wav": 1})
    infos = {c.chunk_id: music_info(c, None, None) for c in chunks}
    manifest = write_manifest(chunks, infos, tmp_path / "m", seed=0)
    assert manifest.train + manifest.valid == 4
    dataset = MusicDataset.from_meta(
        str(manifest.egs_dir / "train"),
        segment_duration=30.0,
        sample_rate=32000,
        channels=1,
        return_info=True,
        info_fields_required=True,
        merge_text_p=0.0,
        num_samples=None,
        shuffle=False,
    )
    assert len(dataset.meta) == manifest.train
    wav, info = dataset[0]
    assert wav.shape == (1, 32000 * 30)
    assert info.description.startswith("caption of ")
    lines = (manifest.egs_dir / "valid" / "data.jsonl").read_text().splitlines()
    entry = json.loads(lines[0])
    assert Path(entry["path"]).with_suffix(".json").is_file()
