"""Genre, mood/theme and instrument taggers: Essentia's Discogs-EffNet models on ONNX Runtime.

Why ONNX: Essentia publishes the same models as TensorFlow graphs (`.pb`, run by the
`essentia-tensorflow` wheel's TensorflowPredict* algorithms) and as ONNX files. The ONNX files
run on the small, widely available `onnxruntime` wheel beside the plain `essentia` wheel, and a
test can build a tiny stand-in in the same format with the `onnx` package; a `.pb` cannot be
built without TensorFlow.

- `discogs-effnet-bsdynamic-1.onnx` maps 128x96 mel patches (Essentia's
  `TensorflowInputMusiCNN` features, 16 kHz) to 400 Discogs style activations (the
  genre_discogs400 classifier is part of this network) and to 1280-d embeddings.
- `mtg_jamendo_moodtheme-discogs-effnet-1.onnx` (56 classes) and
  `mtg_jamendo_instrument-discogs-effnet-1.onnx` (40 classes) map those embeddings to sigmoid
  activations.

Class names come from each model's published `.json` metadata (`"classes"`). The tensor names
of the ONNX exports are not the TensorFlow names the metadata documents, and public users
report both; each spec lists the names it accepts, and a model whose names are not among them
is still accepted when it has exactly one input and one output of the expected width.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

TAGGER_SR = 16000
MEL_FRAME, MEL_HOP, MEL_BANDS = 512, 256, 96
PATCH_FRAMES, PATCH_HOP = 128, 62
EMBEDDING_DIM = 1280
BATCH = 32


class TaggerModelError(RuntimeError):
    """A model file exists but is not what the spec expects (names, shapes, classes)."""


@dataclass(frozen=True)
class ModelSpec:
    """One ONNX model and its metadata.

    Attributes:
        kind: The label kind it produces ("genres", "moods", "instruments"), or "" for the
            embedding model's own role.
        model_file / metadata_file: File names in the models directory.
        inputs: Accepted input tensor names, preferred first.
        outputs: Accepted names of the class-activation output, preferred first.
        classes: Number of classes the metadata and the output must agree on.
    """

    kind: str
    model_file: str
    metadata_file: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    classes: int


EFFNET = ModelSpec(
    kind="genres",
    model_file="discogs-effnet-bsdynamic-1.onnx",
    metadata_file="discogs-effnet-bsdynamic-1.json",
    inputs=("melspectrogram", "serving_default_melspectrogram"),
    outputs=("activations", "PartitionedCall:0"),
    classes=400,
)
EFFNET_EMBEDDINGS = ("embeddings", "PartitionedCall:1")
HEADS: dict[str, ModelSpec] = {
    "moods": ModelSpec(
        kind="moods",
        model_file="mtg_jamendo_moodtheme-discogs-effnet-1.onnx",
        metadata_file="mtg_jamendo_moodtheme-discogs-effnet-1.json",
        inputs=("embeddings", "model/Placeholder:0", "model/Placeholder"),
        outputs=("activations", "model/Sigmoid:0", "model/Sigmoid"),
        classes=56,
    ),
    "instruments": ModelSpec(
        kind="instruments",
        model_file="mtg_jamendo_instrument-discogs-effnet-1.onnx",
        metadata_file="mtg_jamendo_instrument-discogs-effnet-1.json",
        inputs=("embeddings", "model/Placeholder:0", "model/Placeholder"),
        outputs=("activations", "model/Sigmoid:0", "model/Sigmoid"),
        classes=40,
    ),
}
KINDS = ("genres", "moods", "instruments")


def _pick(names: list[str], accepted: tuple[str, ...], what: str, path: Path) -> str:
    for name in accepted:
        if name in names:
            return name
    if len(names) == 1:
        return names[0]
    raise TaggerModelError(f"{path.name}: no {what} named {' or '.join(accepted)} (has {names})")


def _pick_output(session: Any, accepted: tuple[str, ...], width: int, path: Path) -> str:
    outputs = session.get_outputs()
    names = [o.name for o in outputs]
    for name in accepted:
        if name in names:
            return name
    matching = [o.name for o in outputs if o.shape and o.shape[-1] == width]
    if len(matching) == 1:
        return matching[0]
    raise TaggerModelError(f"{path.name}: no output of width {width} named {accepted} ({names})")


def read_classes(path: Path, expected: int) -> list[str]:
    meta = json.loads(path.read_text(encoding="utf-8"))
    classes = meta.get("classes") if isinstance(meta, dict) else None
    if not isinstance(classes, list) or len(classes) != expected:
        found = len(classes) if isinstance(classes, list) else "no"
        raise TaggerModelError(f"{path.name}: expected {expected} classes, found {found}")
    return [str(c) for c in classes]


def pretty_label(kind: str, raw: str) -> str:
    """'Electronic---Deep House' -> 'deep house'; 'electricguitar' stays as published."""
    name = raw.split("---")[-1] if kind == "genres" else raw
    return " ".join(name.replace("_", " ").split()).lower()


class _Session:
    def __init__(self, spec: ModelSpec, models_dir: Path, threads: int) -> None:
        import onnxruntime as ort

        path = locate(models_dir, spec.model_file)
        assert path is not None, f"{spec.model_file} checked by the caller"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise TaggerModelError(f"{path.name}: cannot be loaded ({exc})") from exc
        names = [i.name for i in self.session.get_inputs()]
        self.input = _pick(names, spec.inputs, "input", path)
        self.output = _pick_output(self.session, spec.outputs, spec.classes, path)
        metadata = locate(models_dir, spec.metadata_file)
        assert metadata is not None, f"{spec.metadata_file} checked by the caller"
        self.classes = read_classes(metadata, spec.classes)


class Taggers:
    """The tagger models found in a models directory, each loaded once.

    Attributes:
        classes: Class names (as published) of each available kind.
        missing: For each kind that cannot be produced, the reason (missing files, bad model).
    """

    def __init__(self, models_dir: Path | None, threads: int = 1) -> None:
        self.classes: dict[str, list[str]] = {}
        self.missing: dict[str, str] = {}
        self._effnet: _Session | None = None
        self._embeddings_name = ""
        self._heads: dict[str, _Session] = {}
        self._mel: Any = None
        if models_dir is None:
            for kind in KINDS:
                self.missing[kind] = "no models directory configured"
            return
        absent = _absent(EFFNET, models_dir)
        if absent:
            reason = f"missing {', '.join(absent)} in {models_dir}"
            for kind in KINDS:
                self.missing[kind] = reason
            return
        try:
            self._effnet = _Session(EFFNET, models_dir, threads)
            names = [o.name for o in self._effnet.session.get_outputs()]
            self._embeddings_name = _pick_output(
                self._effnet.session, EFFNET_EMBEDDINGS, EMBEDDING_DIM, Path(EFFNET.model_file)
            )
            assert self._embeddings_name in names
            self.classes["genres"] = self._effnet.classes
        except (TaggerModelError, OSError, ValueError) as exc:
            for kind in KINDS:
                self.missing[kind] = f"embedding model unusable: {exc}"
            self._effnet = None
            return
        for kind, spec in HEADS.items():
            absent = _absent(spec, models_dir)
            if absent:
                self.missing[kind] = f"missing {', '.join(absent)} in {models_dir}"
                continue
            try:
                self._heads[kind] = _Session(spec, models_dir, threads)
                self.classes[kind] = self._heads[kind].classes
            except (TaggerModelError, OSError, ValueError) as exc:
                self.missing[kind] = str(exc)

    @property
    def available(self) -> list[str]:
        return [kind for kind in KINDS if kind in self.classes]

    def patches(self, audio: np.ndarray) -> np.ndarray:
        """(n, 128, 96) mel patches of mono audio at TAGGER_SR: what Essentia's
        TensorflowPredictEffnetDiscogs feeds the network.

        Frames as its FrameCutter cuts them (512 samples every 256, the first one centred on
        sample 0, so half of it is zeros, and the last one the first whose centre reaches the
        end), the bands of each frame from `TensorflowInputMusiCNN`, and patches of 128 frames
        every 62 with an incomplete last patch dropped. One difference: audio too short for a
        single patch is padded with silence to give one (Essentia gives none).
        """
        import essentia.standard as es

        if self._mel is None:
            self._mel = es.TensorflowInputMusiCNN()
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        # FrameCutter yields ceil(n / hop) + 1 frames; one patch needs PATCH_FRAMES of them.
        length = max(audio.size, (PATCH_FRAMES - 1) * MEL_HOP)
        count = -(-length // MEL_HOP) + 1
        padded = np.zeros((count - 1) * MEL_HOP + MEL_FRAME, np.float32)
        padded[MEL_FRAME // 2 : MEL_FRAME // 2 + audio.size] = audio
        frames = np.lib.stride_tricks.sliding_window_view(padded, MEL_FRAME)[::MEL_HOP]
        assert frames.shape[0] == count
        mel = np.stack([self._mel(np.ascontiguousarray(f)) for f in frames]).astype(np.float32)
        starts = range(0, mel.shape[0] - PATCH_FRAMES + 1, PATCH_HOP)
        return np.stack([mel[s : s + PATCH_FRAMES] for s in starts])

    def tag(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """Mean class activations of each available kind for mono audio at TAGGER_SR."""
        if self._effnet is None:
            return {}
        patches = self.patches(audio)
        effnet = self._effnet
        activations, embeddings = [], []
        for start in range(0, patches.shape[0], BATCH):
            batch = patches[start : start + BATCH]
            act, emb = effnet.session.run(
                [effnet.output, self._embeddings_name], {effnet.input: batch}
            )
            activations.append(np.asarray(act, dtype=np.float32))
            embeddings.append(np.asarray(emb, dtype=np.float32))
        emb_all = np.concatenate(embeddings)
        out = {"genres": np.concatenate(activations).mean(axis=0)}
        for kind, head in self._heads.items():
            (pred,) = head.session.run([head.output], {head.input: emb_all})
            out[kind] = np.asarray(pred, dtype=np.float32).mean(axis=0)
        return out


def locate(models_dir: Path, filename: str) -> Path | None:
    """`models_dir/filename`, or the same name in a subfolder (the download keeps the
    publisher's folders: feature-extractors/discogs-effnet/...)."""
    direct = models_dir / filename
    if direct.is_file():
        return direct
    if not models_dir.is_dir():
        return None
    return next((p for p in sorted(models_dir.rglob(filename)) if p.is_file()), None)


def _absent(spec: ModelSpec, models_dir: Path) -> list[str]:
    return [f for f in (spec.model_file, spec.metadata_file) if locate(models_dir, f) is None]


def model_files() -> dict[str, tuple[str, ...]]:
    """Files each label kind needs (for messages and the download table)."""
    base = (EFFNET.model_file, EFFNET.metadata_file)
    return {
        "genres": base,
        **{kind: (*base, spec.model_file, spec.metadata_file) for kind, spec in HEADS.items()},
    }


def missing_files(models_dir: Path | None) -> list[str]:
    """Tagger files that are not in `models_dir` (without loading any model)."""
    needed = dict.fromkeys(f for files in model_files().values() for f in files)
    if models_dir is None:
        return list(needed)
    return [f for f in needed if locate(models_dir, f) is None]
