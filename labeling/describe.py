"""Descriptions and MusicInfo fields of a training example.

Precedence of the text: the file's own caption (`songname.txt`) > `one_same_description` > the
auto description composed from the labels. Unless `append_auto=False`, the auto description is
appended to a given text. `one_same_description=""` (or None) means auto labels only.

When there is no caption, no shared description and no label at all (tagger models absent and
the audio has neither key nor beat, e.g. noise), the description falls back to the words of the
source file name ("Rainy Night_v2.wav" -> "rainy night v2"), and `"music"` when the name has
no letters. So no entry is ever written with an empty description, unless the caller asks for
unconditional training (`unconditional=True`), where every description is "".

One tempo per chunk: when the caption or shared text already states a tempo ("128 bpm", "at 90
BPM", "90bpm", "BPM: 90"), the auto description says none (`given_tempo`, `reconcile_tempo`),
and the MusicInfo `bpm` is the text's tempo: the user's word wins, as for the text itself.
Whether a measured tempo is confident enough to be written at all is decided once, in the
labeling stage (`LabelSettings.min_bpm_confidence`): below it a chunk's labels carry no `bpm`.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

from musicgen_ft.types import Chunk, Labels, LabelScore

FALLBACK_TEXT = "music"
# How many of each kind go into the sentence (the MusicInfo fields keep them all).
DESCRIBE_GENRES, DESCRIBE_MOODS, DESCRIBE_INSTRUMENTS = 2, 2, 3


_NUMBER = r"(\d{2,3}(?:[.,]\d+)?)"
_BPM = r"(?:bpm|b\.p\.m\.?|beats per minute)"
TEMPO_PATTERNS = (
    re.compile(rf"(?<![\d.]){_NUMBER}\s*-?\s*{_BPM}(?![a-z])", re.IGNORECASE),  # 128 bpm, 90bpm
    re.compile(rf"(?<![a-z]){_BPM}\s*[:=]?\s*{_NUMBER}(?![\d])", re.IGNORECASE),  # BPM: 90
)
# An auto phrase carrying a tempo, removed when the given text has its own: "at 124 BPM".
_AUTO_TEMPO = re.compile(rf",?\s*\bat\s+{_NUMBER}\s*{_BPM}(?![a-z])", re.IGNORECASE)
TEMPO_TOLERANCE = 0.04  # as the benchmark's Acc1


def given_tempo(text: str | None) -> float | None:
    """The tempo a caption states ("128 bpm", "at 90 BPM", "90bpm", "BPM: 90"), if exactly one
    (or several equal ones) within 20..400 BPM; None otherwise."""
    if not text:
        return None
    found = {
        float(m.group(1).replace(",", "."))
        for pattern in TEMPO_PATTERNS
        for m in pattern.finditer(text)
    }
    found = {bpm for bpm in found if 20 <= bpm <= 400}
    return found.pop() if len(found) == 1 else None


def tempo_agrees(stated: float, measured: float) -> bool:
    """`measured` is `stated` within 4 %, or an octave of it (x2, /2)."""
    return any(abs(measured - stated * f) <= TEMPO_TOLERANCE * stated * f for f in (1.0, 2.0, 0.5))


def reconcile_tempo(given: str | None, labels: Labels | None) -> tuple[Labels | None, float | None]:
    """(labels to describe, the chunk's tempo) when the caption or shared text is `given`.

    Never two tempos for one chunk: when `given` states a tempo, the labels lose theirs (so the
    auto description names none) and the chunk's tempo is the stated one, whether or not it
    agrees with the measured one (`tempo_agrees` tells; the measurement is a guess, the caption
    the user's word). Otherwise the labels are unchanged and the tempo is the measured one.
    """
    stated = given_tempo(given)
    measured = labels.bpm if labels is not None else None
    if stated is None:
        return labels, measured
    if labels is None:
        return None, stated
    text = labels.description
    if text and text != compose_description(labels):
        text = _AUTO_TEMPO.sub("", text)  # a reviewed text: take its tempo phrase out
        for pattern in TEMPO_PATTERNS:
            text = pattern.sub("", text)
        text = re.sub(r"\s+([,.])", r"\1", re.sub(r"\s{2,}", " ", text)).strip(" ,")
    else:
        text = None
    return replace(labels, bpm=None, bpm_confidence=None, description=text or None), stated


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _names(scores: list[LabelScore], limit: int) -> list[str]:
    seen: list[str] = []
    for item in scores:
        if item.label not in seen:
            seen.append(item.label)
    return seen[:limit]


def key_text(labels: Labels) -> str | None:
    if not labels.key:
        return None
    return f"{labels.key} {labels.scale}" if labels.scale else labels.key


def compose_description(labels: Labels) -> str:
    """A sentence from the labels, e.g. "Deep house and techno track, energetic and dark,
    with synthesizer, drums and bass, in F# minor at 124 BPM". "" when there is no label."""
    genres = _names(labels.genres, DESCRIBE_GENRES)
    moods = _names(labels.moods, DESCRIBE_MOODS)
    instruments = _names(labels.instruments, DESCRIBE_INSTRUMENTS)
    parts: list[str] = []
    head = f"{_join(genres)} track" if genres else ""
    if moods:
        head = f"{head}, {_join(moods)}" if head else f"{_join(moods)} music"
    if head:
        parts.append(head)
    if instruments:
        parts.append(f"with {_join(instruments)}")
    tail = []
    key = key_text(labels)
    if key:
        tail.append(f"in {key}")
    if labels.bpm:
        tail.append(f"at {round(labels.bpm)} BPM")
    if tail:
        parts.append(" ".join(tail))
    if not parts:
        return ""
    text = ", ".join(parts) if head else "Music " + " ".join(parts)
    return text[0].upper() + text[1:]


def name_fallback(source: str) -> str:
    """Words of a source file's name: 'dir/Rainy Night_v2.wav' -> 'rainy night v2'."""
    stem = PurePosixPath(source).stem
    words = re.findall(r"[^\W_]+", stem.lower())
    text = " ".join(words)
    return text if re.search(r"[^\W\d_]", text) else FALLBACK_TEXT


def choose_description(
    chunk: Chunk,
    labels: Labels | None,
    one_same_description: str | None,
    append_auto: bool = True,
) -> tuple[str, str]:
    """(description, where it came from: caption | shared | auto | caption+auto |
    shared+auto | file name)."""
    given, origin = None, ""
    if chunk.caption and chunk.caption.strip():
        given, origin = chunk.caption.strip(), "caption"
    elif one_same_description and one_same_description.strip():
        given, origin = one_same_description.strip(), "shared"
    labels, _ = reconcile_tempo(given, labels)
    auto = ""
    if labels is not None:
        auto = (labels.description or compose_description(labels)).strip()
    if given:
        if append_auto and auto:
            return f"{given.rstrip('. ')}. {auto}", f"{origin}+auto"
        return given, origin
    if auto:
        return auto, "auto"
    return name_fallback(chunk.source), "file name"


def music_info(
    chunk: Chunk,
    labels: Labels | None,
    one_same_description: str | None,
    append_auto: bool = True,
    unconditional: bool = False,
) -> dict[str, Any]:
    """The MusicInfo fields AudioCraft reads for `chunk`, with the types it expects.

    Every MusicInfo field is present (AudioCraft's MusicDataset requires them by default):
    `genre`, `instrument`, `key`, `description`, `name`, `title`, `artist` are strings or None;
    `moods` and `keywords` are lists of strings; `bpm` is a float or None.

    Args:
        chunk: The training example.
        labels: Its automatic labels, if any.
        one_same_description: Text shared by every file; "" or None for auto labels only.
        append_auto: Append the auto description to a caption or shared text.
        unconditional: Train without text: the description is "" (the only case it is empty).
    """
    if unconditional:
        description, origin = "", "unconditional"
    else:
        description, origin = choose_description(chunk, labels, one_same_description, append_auto)
    assert unconditional or description, "a conditional example must have a description"
    lab = labels or Labels()
    given = chunk.caption if chunk.caption and chunk.caption.strip() else one_same_description
    _, bpm = reconcile_tempo(None if unconditional else given, labels)
    keywords = [s.label for s in lab.genres] + [s.label for s in lab.moods]
    return {
        "name": chunk.chunk_id,
        "title": PurePosixPath(chunk.source).stem,
        "artist": None,
        "description": description,
        "description_origin": origin,
        "key": key_text(lab),
        "bpm": round(float(bpm), 1) if bpm else None,
        "genre": lab.genres[0].label if lab.genres else None,
        "moods": [s.label for s in lab.moods],
        "instrument": ", ".join(s.label for s in lab.instruments) or None,
        "keywords": list(dict.fromkeys(keywords)),
        "sample_rate": chunk.sample_rate,
        "channels": chunk.channels,
    }
