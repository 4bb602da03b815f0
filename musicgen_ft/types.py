"""Plain records passed between pipeline stages."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Chunk:
    """One prepared training example: a chunk of at most 30 s of one source file.

    Attributes:
        path: The chunk's WAV file (the variant's sample rate and channels).
        source: Path of the source file, relative to the dataset root.
        index: Position of the chunk in its source file (0-based).
        start: Start time in the source file, in seconds.
        duration: Length in seconds.
        sample_rate: Sample rate of `path`.
        channels: Channels of `path`.
        caption: Text of the source's `songname.txt`, if any.
    """

    path: Path
    source: str
    index: int
    start: float
    duration: float
    sample_rate: int
    channels: int
    caption: str | None = None

    @property
    def chunk_id(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


@dataclass
class Labels:
    """Automatic labels of one chunk (all optional: a label that could not be made is absent)."""

    key: str | None = None
    scale: str | None = None
    key_strength: float | None = None
    bpm: float | None = None
    bpm_confidence: float | None = None
    # Tempo candidates (bpm, confidence), most confident first, kept even when `bpm` is left
    # out for low confidence (labels.json only; the review CSV and MusicInfo do not carry them).
    bpm_candidates: list[tuple[float, float]] = field(default_factory=list)
    genres: list[LabelScore] = field(default_factory=list)
    moods: list[LabelScore] = field(default_factory=list)
    instruments: list[LabelScore] = field(default_factory=list)
    description: str | None = None


@dataclass
class Rejected:
    path: str
    reason: str


@dataclass
class DatasetReport:
    """What the data preparation did, for the log, the metadata and the tar."""

    files_seen: int = 0
    files_used: list[str] = field(default_factory=list)
    files_rejected: list[Rejected] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    minutes: float = 0.0
    dropped_silent_chunks: int = 0
    dropped_duplicate_chunks: int = 0
    clipping: list[str] = field(default_factory=list)
    vocal_removal: dict[str, Any] = field(default_factory=dict)
    labeling: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["minutes"] = round(self.minutes, 3)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetReport:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["files_rejected"] = [Rejected(**r) for r in data.get("files_rejected", [])]
        return cls(**values)
