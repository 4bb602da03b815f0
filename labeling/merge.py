"""One chunk's MusicInfo: its automatic labels, the reviewed overrides, and its description.

The one place where labels and captions meet: precedence of the text is decided in
`labeling.describe`, the reviewed labels file wins over the automatic labels per source file or
per chunk (`labeling.review`).
"""

from __future__ import annotations

from typing import Any

from labeling import review
from labeling.describe import music_info
from musicgen_ft.types import Chunk, Labels


def chunk_info(
    chunk: Chunk,
    labels: dict[str, Labels],
    overrides: dict[str, dict[str, Any]],
    one_same_description: str | None,
) -> dict[str, Any]:
    """MusicInfo fields of one chunk: automatic labels, reviewed overrides, descriptions."""
    chunk_labels = labels.get(chunk.chunk_id)
    if overrides:
        chunk_labels = review.apply_overrides(chunk_labels, chunk.source, chunk.chunk_id, overrides)
    return music_info(chunk, chunk_labels, one_same_description)
