"""The labeling stage: key, mode and BPM per source track, genres/moods/instruments per chunk.

Key and BPM are measured once per source file, on its chunks joined in order (up to
`max_source_seconds`), so every chunk of a song carries the same key and tempo. The taggers
are loaded once per job and run on each chunk. When their models are absent, the stage logs
which label kinds it cannot produce and why, records the same in the report, and carries on
with key and BPM.

Writes `labels.json` (labels by chunk id, the settings and the report) under `workdir`, and
nothing else anywhere.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labeling import analysis
from labeling.describe import compose_description
from labeling.taggers import KINDS, TAGGER_SR, Taggers, pretty_label
from musicgen_ft.atomic import atomic_write_json
from musicgen_ft.cache import make_key
from musicgen_ft.types import Chunk, Labels, LabelScore

logger = logging.getLogger(__name__)
LABELS_FILE = "labels.json"
# 3: tempo level chosen among candidates, `bpm_candidates`; 4: round-2 rule; 5: key scorer (round 4)
FORMAT_VERSION = 5


@dataclass(frozen=True)
class LabelSettings:
    """What the labeling stage does. Validated once, in `validate()`.

    Attributes:
        enabled: Label at all (off: no labels; descriptions come from captions/shared text).
        models_dir: Folder with the tagger models (see labeling.models); None: key/BPM only.
        top_k: Most labels kept per kind, by score.
        thresholds: Least score for a label of each kind to be kept.
        class_thresholds: Per-class overrides, keyed "kind:label" (e.g. "moods:dark": 0.2),
            label as published or as shown (lower case).
        min_key_strength: Below this Essentia key strength the key is left out.
        min_bpm_confidence: Below this tempo confidence the BPM is left out of the labels, and
            so of the description and the MusicInfo `bpm` (the one tempo threshold; 0.6 was set
            on the development clips of bench/README.md, where 95 % of the tempi above it were
            right, 79 % of the clips clearing it). The candidates are kept in `bpm_candidates`
            either way.
        max_source_seconds: Key/BPM use at most this much audio of each source.
        threads: ONNX Runtime threads for the taggers.
    """

    enabled: bool = True
    models_dir: Path | None = None
    top_k: Mapping[str, int] = field(
        default_factory=lambda: {"genres": 3, "moods": 3, "instruments": 4}
    )
    thresholds: Mapping[str, float] = field(
        default_factory=lambda: {"genres": 0.1, "moods": 0.05, "instruments": 0.1}
    )
    class_thresholds: Mapping[str, float] = field(default_factory=dict)
    min_key_strength: float = 0.2
    min_bpm_confidence: float = 0.6
    max_source_seconds: float = 600.0
    threads: int = 1

    def validate(self) -> None:
        from musicgen_ft.errors import InputError

        for name, mapping in (("top_k", self.top_k), ("thresholds", self.thresholds)):
            unknown = sorted(set(mapping) - set(KINDS))
            if unknown:
                raise InputError(name, f"unknown kinds {unknown}; use {', '.join(KINDS)}")
        for kind, k in self.top_k.items():
            if k < 0:
                raise InputError("top_k", f"{kind}={k} is negative; use 0 (none) or more")
        for key, value in {**self.thresholds, **self.class_thresholds}.items():
            if not 0.0 <= value <= 1.0:
                raise InputError("thresholds", f"{key}={value} is outside 0..1")
        for key in self.class_thresholds:
            if key.split(":", 1)[0] not in KINDS or ":" not in key:
                raise InputError("class_thresholds", f"{key!r} is not 'kind:label'")
        if self.max_source_seconds <= 0:
            raise InputError("max_source_seconds", f"{self.max_source_seconds} must be > 0")

    def fingerprint(self) -> str:
        """Key of these settings and of the models present (installing taggers changes it)."""
        data = asdict(self)
        data["models_dir"] = str(self.models_dir) if self.models_dir else None
        settings = json.dumps(data, sort_keys=True, default=str)
        return make_key("labels", str(FORMAT_VERSION), settings, _models_identity(self.models_dir))


def _models_identity(folder: Path | None) -> str:
    """The tagger files present: names and sizes (what the labels depend on)."""
    if folder is None or not folder.is_dir():
        return "none"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return "|".join(f"{p.relative_to(folder).as_posix()}:{p.stat().st_size}" for p in files)


@dataclass
class LabelResult:
    labels: dict[str, Labels]  # by chunk id
    report: dict[str, Any]


def select(
    kind: str, scores: np.ndarray, classes: list[str], settings: LabelSettings
) -> list[LabelScore]:
    """Labels of one kind above their thresholds, best first, at most top_k."""
    base = settings.thresholds.get(kind, 0.1)
    picked = []
    for index in np.argsort(-scores):
        raw = classes[int(index)]
        label = pretty_label(kind, raw)
        limit = settings.class_thresholds.get(
            f"{kind}:{raw}", settings.class_thresholds.get(f"{kind}:{label}", base)
        )
        if scores[index] >= limit:
            picked.append(LabelScore(label, round(float(scores[index]), 4)))
        if len(picked) >= settings.top_k.get(kind, 3):
            break
    return picked


def _load(chunk: Chunk) -> tuple[np.ndarray, int]:
    import soundfile as sf

    audio, sr = sf.read(str(chunk.path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(sr)


def _resample(mono: np.ndarray, sr: int, target: int) -> np.ndarray:
    import soxr

    if sr == target:
        return np.ascontiguousarray(mono, dtype=np.float32)
    return np.ascontiguousarray(soxr.resample(mono, sr, target, quality="HQ"), dtype=np.float32)


def label_source(
    chunks: list[Chunk], settings: LabelSettings, taggers: Taggers | None
) -> dict[str, Labels]:
    """Labels of the chunks of one source file (ordered by index)."""
    ordered = sorted(chunks, key=lambda c: c.index)
    pieces: list[np.ndarray] = []
    budget = int(settings.max_source_seconds * analysis.ANALYSIS_SR)
    tags: dict[str, dict[str, np.ndarray]] = {}
    for chunk in ordered:
        mono, sr = _load(chunk)
        if budget > 0:
            piece = _resample(mono, sr, analysis.ANALYSIS_SR)[:budget]
            pieces.append(piece)
            budget -= piece.size
        if taggers is not None and taggers.available:
            tags[chunk.chunk_id] = taggers.tag(_resample(mono, sr, TAGGER_SR))
    joined = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    key = analysis.estimate_key(joined)
    tempo = analysis.estimate_tempo(joined)
    if key is not None and key.strength < settings.min_key_strength:
        key = None
    candidates = [(bpm, conf) for bpm, conf in tempo.candidates] if tempo is not None else []
    if tempo is not None and tempo.confidence < settings.min_bpm_confidence:
        tempo = None
    out: dict[str, Labels] = {}
    for chunk in ordered:
        labels = Labels(
            key=key.key if key else None,
            scale=key.scale if key else None,
            key_strength=key.strength if key else None,
            bpm=tempo.bpm if tempo else None,
            bpm_confidence=tempo.confidence if tempo else None,
            bpm_candidates=list(candidates),
        )
        assert taggers is not None or not tags
        for kind, scores in tags.get(chunk.chunk_id, {}).items():
            assert taggers is not None
            setattr(labels, kind, select(kind, scores, taggers.classes[kind], settings))
        labels.description = compose_description(labels) or None
        out[chunk.chunk_id] = labels
    return out


def build_report(
    labels: dict[str, Labels], missing: dict[str, str], seconds: float, sources: int
) -> dict[str, Any]:
    """Label distribution and what could not be produced, for the log and the metadata."""
    count: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
    keys: Counter[str] = Counter()
    bpm_bins: Counter[str] = Counter()
    no_key = no_bpm = 0
    for item in labels.values():
        for kind in KINDS:
            count[kind].update(s.label for s in getattr(item, kind))
        if item.key:
            keys[f"{item.key} {item.scale}"] += 1
        else:
            no_key += 1
        if item.bpm:
            low = int(item.bpm // 10 * 10)
            bpm_bins[f"{low}-{low + 9}"] += 1
        else:
            no_bpm += 1
    return {
        "chunks": len(labels),
        "sources": sources,
        "seconds": round(seconds, 2),
        "top": {kind: dict(count[kind].most_common(10)) for kind in KINDS},
        "keys": dict(keys.most_common()),
        "bpm_histogram": dict(sorted(bpm_bins.items(), key=lambda kv: int(kv[0].split("-")[0]))),
        "without_key": no_key,
        "without_bpm": no_bpm,
        "unavailable": dict(missing),
    }


def labels_to_dict(labels: Labels) -> dict[str, Any]:
    return asdict(labels)


def labels_from_dict(data: Mapping[str, Any]) -> Labels:
    def scores(items: Any) -> list[LabelScore]:
        return [LabelScore(str(i["label"]), float(i["score"])) for i in items or []]

    return Labels(
        key=data.get("key"),
        scale=data.get("scale"),
        key_strength=data.get("key_strength"),
        bpm=data.get("bpm"),
        bpm_confidence=data.get("bpm_confidence"),
        bpm_candidates=[(float(b), float(c)) for b, c in data.get("bpm_candidates") or []],
        genres=scores(data.get("genres")),
        moods=scores(data.get("moods")),
        instruments=scores(data.get("instruments")),
        description=data.get("description"),
    )


def _cached(path: Path, chunk_ids: list[str], fingerprint: str) -> LabelResult | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("version") != FORMAT_VERSION or data.get("settings") != fingerprint:
        return None
    if sorted(data.get("labels", {})) != sorted(chunk_ids):
        return None
    labels = {cid: labels_from_dict(item) for cid, item in data["labels"].items()}
    return LabelResult(labels=labels, report={**data["report"], "cached": True})


def run(
    chunks: list[Chunk],
    settings: LabelSettings,
    workdir: Path,
    taggers: Taggers | None = None,
) -> LabelResult:
    """Label every chunk. Key/BPM per source, taggers per chunk.

    Args:
        chunks: The prepared chunks.
        settings: What to label and how.
        workdir: This stage's folder (labels.json goes there; a finished run is reused).
        taggers: Already-loaded taggers (tests, servers); loaded from
            `settings.models_dir` once when None.

    Returns:
        The labels by chunk id and the report. Never raises for missing models.
    """
    settings.validate()
    if not settings.enabled:
        report = {"enabled": False, "unavailable": {k: "labeling turned off" for k in KINDS}}
        return LabelResult(labels={}, report=report)
    out_file = workdir / LABELS_FILE
    fingerprint = settings.fingerprint()
    hit = _cached(out_file, [c.chunk_id for c in chunks], fingerprint)
    if hit is not None:
        logger.info("labels: reusing %s", out_file)
        return hit
    start = time.monotonic()
    if taggers is None:
        taggers = Taggers(settings.models_dir, threads=settings.threads)
    missing = dict(taggers.missing)
    for kind, reason in missing.items():
        logger.warning("labels: cannot produce %s (%s); continuing with key and BPM", kind, reason)
    by_source: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_source.setdefault(chunk.source, []).append(chunk)
    labels: dict[str, Labels] = {}
    for done, (source, items) in enumerate(sorted(by_source.items()), start=1):
        labels.update(label_source(items, settings, taggers))
        logger.info("labels: %d/%d sources (%s)", done, len(by_source), source)
    report = build_report(labels, missing, time.monotonic() - start, len(by_source))
    log_report(report)
    workdir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out_file,
        {
            "version": FORMAT_VERSION,
            "settings": fingerprint,
            "labels": {cid: labels_to_dict(item) for cid, item in labels.items()},
            "sources": {c.chunk_id: c.source for c in chunks},
            "report": report,
        },
    )
    return LabelResult(labels=labels, report=report)


def log_report(report: Mapping[str, Any]) -> None:
    def fmt(counts: Mapping[str, int]) -> str:
        return ", ".join(f"{k} ({v})" for k, v in counts.items()) or "none"

    logger.info("labels: %d chunks of %d sources", report["chunks"], report["sources"])
    for kind in KINDS:
        if kind in report["unavailable"]:
            logger.info("labels: %s: unavailable (%s)", kind, report["unavailable"][kind])
        else:
            logger.info("labels: top %s: %s", kind, fmt(report["top"][kind]))
    logger.info("labels: keys: %s", fmt(report["keys"]))
    logger.info("labels: BPM: %s", fmt(report["bpm_histogram"]))
