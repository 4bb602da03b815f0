"""Descriptions and MusicInfo fields of a training example."""

from __future__ import annotations

from typing import Any

from musicgen_ft.types import Chunk, Labels

MUSIC_INFO_FIELDS = (
    "title", "artist", "key", "bpm", "genre", "moods", "keywords", "description", "name",
    "instrument",
)


def choose_description(
    chunk: Chunk, labels: Labels | None, one_same_description: str | None
) -> str:
    """Per-file caption > one_same_description > the auto description."""
    if chunk.caption:
        return chunk.caption
    if one_same_description:
        return one_same_description.strip()
    if labels is not None and labels.description:
        return labels.description
    return ""


def music_info(
    chunk: Chunk, labels: Labels | None, one_same_description: str | None
) -> dict[str, Any]:
    """The MusicInfo fields AudioCraft reads for `chunk`, with the types it expects."""
    # AudioCraft's MusicDataset requires every MusicInfo field to be present (None allowed).
    info: dict[str, Any] = {field: None for field in MUSIC_INFO_FIELDS}
    info |= {
        "name": chunk.chunk_id,
        "title": chunk.source,
        "description": choose_description(chunk, labels, one_same_description),
        "sample_rate": chunk.sample_rate,
        "channels": chunk.channels,
    }
    if labels is not None:
        if labels.key:
            info["key"] = f"{labels.key} {labels.scale}" if labels.scale else labels.key
        if labels.bpm:
            info["bpm"] = round(float(labels.bpm), 1)
        if labels.genres:
            info["genre"] = labels.genres[0].label
        if labels.moods:
            info["moods"] = [m.label for m in labels.moods]
        if labels.instruments:
            info["instrument"] = ", ".join(i.label for i in labels.instruments)
    return info
