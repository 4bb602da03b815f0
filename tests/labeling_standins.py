"""Tiny stand-ins of Essentia's ONNX taggers, trained here to tell two kinds of audio apart.

Same file names, formats, tensor names, widths and `.json` class lists as the released models,
loaded by `labeling.taggers` unchanged. What they compute:

- `discogs-effnet-bsdynamic-1.onnx`: `melspectrogram` (n, 128, 96) -> the mean and the standard
  deviation over time of each band (192 numbers, standardized with the training statistics),
  a fixed random projection to 1280 with tanh (`embeddings`), and a trained sigmoid layer over
  the 400 Discogs styles (`activations`), as the released network holds its genre classifier.
- the mood/theme (56 classes) and instrument (40 classes) heads: `embeddings` (n, 1280) -> a
  trained sigmoid layer; the instrument head uses the TensorFlow-style tensor names.

Training (`trained()`, once per process, about a second on one core, fixed seeds): multi-label
logistic regression by full-batch gradient descent with numpy, on the embeddings of the mel
patches (`Taggers.patches`, the front end the pipeline uses) of synthetic clips of two kinds,
`labeling_audio.held_notes` (TONAL: low sustained tones) and `labeling_audio.percussion`
(PERCUSSIVE: bright noisy percussion), TRAIN_SEEDS each, the notes drawn from TRAIN_PITCHES.
Each model has one class per kind of audio (CLASSES; the targets are the same for the three
models, so one fit serves them all); every other class is never a target and stays silent
(zero weights, bias -8). Tests assert on held-out clips: other seeds
(HELD_OUT_SEEDS), other pitches (HELD_OUT_PITCHES) and `labeling_audio`'s chords and grooves.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from labeling_audio import held_notes, percussion
from onnx import TensorProto, helper, numpy_helper

from labeling.taggers import EFFNET, EMBEDDING_DIM, HEADS, TAGGER_SR, ModelSpec, Taggers

OPSET = 17
TONAL, PERCUSSIVE = "tonal", "percussive"
AUDIO_KINDS = (TONAL, PERCUSSIVE)
# Per model kind: the (index, published name) of the class each kind of audio is trained to.
CLASSES: dict[str, dict[str, tuple[int, str]]] = {
    "genres": {TONAL: (57, "Electronic---Ambient"), PERCUSSIVE: (341, "Electronic---Techno")},
    "moods": {TONAL: (9, "calm"), PERCUSSIVE: (17, "energetic")},
    "instruments": {TONAL: (26, "organ"), PERCUSSIVE: (14, "drums")},
}
# Labels as the pipeline shows them (pretty_label), per kind of audio.
EXPECTED = {
    TONAL: {"genres": "ambient", "moods": "calm", "instruments": "organ"},
    PERCUSSIVE: {"genres": "techno", "moods": "energetic", "instruments": "drums"},
}
TRAIN_SEEDS = range(12)
TRAIN_PITCHES = range(36, 73, 2)  # even MIDI notes C2..C5
HELD_OUT_SEEDS = range(100, 106)
HELD_OUT_PITCHES = range(37, 74, 2)  # odd MIDI notes: none of them heard in training
TRAIN_SECONDS = 4.5
FEATURES = 2 * 96
SILENT_BIAS = -8.0
# The tensors of each model's last layer (weights, bias), for tests that edit them.
LAST_LAYER = {"genres": ("w2", "b2"), "moods": ("w", "b"), "instruments": ("w", "b")}


@dataclass(frozen=True)
class Trained:
    """The stand-ins' weights. `heads[kind]` is (weights (1280, classes), bias (classes,))."""

    center: np.ndarray
    scale: np.ndarray
    projection: np.ndarray
    heads: dict[str, tuple[np.ndarray, np.ndarray]]


def _save(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    return model


def _classes(spec: ModelSpec) -> list[str]:
    if spec.kind == "genres":
        names = [f"Genre{i % 7}---Style {i}" for i in range(spec.classes)]
    else:
        names = [f"class{i}" for i in range(spec.classes)]
    for index, name in CLASSES[spec.kind].values():
        names[index] = name
    return names


def _write_metadata(spec: ModelSpec, models_dir: Path, name: str) -> None:
    meta = {"name": name, "classes": _classes(spec)}
    (models_dir / spec.metadata_file).write_text(json.dumps(meta))


def _effnet(center: np.ndarray, scale: np.ndarray, projection: np.ndarray,
            weights: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:  # fmt: skip
    """melspectrogram (n,128,96) -> embeddings (n,1280), activations (n,400)."""
    tensors = {"center": center, "scale": scale, "w1": projection, "w2": weights, "b2": bias}
    init = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in tensors.items()]
    nodes = [
        helper.make_node("ReduceMean", ["melspectrogram"], ["mean"], axes=[1], keepdims=0),
        helper.make_node("Mul", ["melspectrogram", "melspectrogram"], ["squares"]),
        helper.make_node("ReduceMean", ["squares"], ["mean_square"], axes=[1], keepdims=0),
        helper.make_node("Mul", ["mean", "mean"], ["mean2"]),
        helper.make_node("Sub", ["mean_square", "mean2"], ["variance0"]),
        helper.make_node("Relu", ["variance0"], ["variance"]),
        helper.make_node("Sqrt", ["variance"], ["std"]),
        helper.make_node("Concat", ["mean", "std"], ["features"], axis=1),
        helper.make_node("Sub", ["features", "center"], ["centered"]),
        helper.make_node("Div", ["centered", "scale"], ["standard"]),
        helper.make_node("MatMul", ["standard", "w1"], ["projected"]),
        helper.make_node("Tanh", ["projected"], ["embeddings"]),
        helper.make_node("MatMul", ["embeddings", "w2"], ["logits0"]),
        helper.make_node("Add", ["logits0", "b2"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["activations"]),
    ]
    graph = helper.make_graph(
        nodes,
        "effnet_standin",
        [helper.make_tensor_value_info("melspectrogram", TensorProto.FLOAT, ["batch", 128, 96])],
        [
            helper.make_tensor_value_info(
                "activations", TensorProto.FLOAT, ["batch", EFFNET.classes]
            ),
            helper.make_tensor_value_info(
                "embeddings", TensorProto.FLOAT, ["batch", EMBEDDING_DIM]
            ),
        ],
        init,
    )
    return _model(graph)


def _head(kind: str, weights: np.ndarray, bias: np.ndarray, tf_names: bool) -> onnx.ModelProto:
    spec = HEADS[kind]
    x, y = ("model/Placeholder:0", "model/Sigmoid:0") if tf_names else ("embeddings", "activations")
    init = [
        numpy_helper.from_array(weights.astype(np.float32), "w"),
        numpy_helper.from_array(bias.astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("MatMul", [x, "w"], ["z0"]),
        helper.make_node("Add", ["z0", "b"], ["z"]),
        helper.make_node("Sigmoid", ["z"], [y]),
    ]
    graph = helper.make_graph(
        nodes,
        f"{kind}_standin",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", EMBEDDING_DIM])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["batch", spec.classes])],
        init,
    )
    return _model(graph)


def training_clips() -> list[tuple[str, np.ndarray]]:
    """(kind of audio, 16 kHz mono clip) of every training example."""
    clips = []
    for seed in TRAIN_SEEDS:
        clips.append((TONAL, held_notes(seed, TRAIN_SECONDS, TAGGER_SR, TRAIN_PITCHES)))
        clips.append((PERCUSSIVE, percussion(seed, TRAIN_SECONDS, TAGGER_SR)))
    return clips


def _logistic(x: np.ndarray, y: np.ndarray, steps: int = 400, lr: float = 0.5,
              l2: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Independent sigmoid outputs fitted by full-batch gradient descent on the log loss."""
    w = np.zeros((x.shape[1], y.shape[1]))
    b = np.zeros(y.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        w -= lr * (x.T @ (p - y) / x.shape[0] + l2 * w)
        b -= lr * (p - y).mean(axis=0)
    return w, b


@functools.cache
def trained() -> Trained:
    """Fit the stand-ins (once per process): feature statistics, then each kind's last layer."""
    import onnxruntime as ort

    front_end = Taggers(None)
    patches, kinds = [], []
    for kind, clip in training_clips():
        p = front_end.patches(clip)
        patches.append(p)
        kinds += [kind] * p.shape[0]
    x = np.concatenate(patches)
    features = np.concatenate([x.mean(axis=1), x.std(axis=1)], axis=1)
    center, scale = features.mean(axis=0), features.std(axis=0) + 1e-3
    projection = np.random.default_rng(0).standard_normal((FEATURES, EMBEDDING_DIM))
    projection /= np.sqrt(FEATURES)
    zeros = np.zeros((EMBEDDING_DIM, EFFNET.classes))
    embedder = _effnet(center, scale, projection, zeros, np.zeros(EFFNET.classes))
    session = ort.InferenceSession(embedder.SerializeToString(), providers=["CPUExecutionProvider"])
    (embeddings,) = session.run(["embeddings"], {"melspectrogram": x})
    targets = np.array([[k == TONAL, k == PERCUSSIVE] for k in kinds], dtype=np.float64)
    w, b = _logistic(np.asarray(embeddings, np.float64), targets)
    fitted = 1.0 / (1.0 + np.exp(-(np.asarray(embeddings, np.float64) @ w + b))) > 0.5
    assert (fitted == targets.astype(bool)).all(), (
        "the stand-ins do not separate their training set"
    )
    heads = {}
    for kind, spec in {"genres": EFFNET, **HEADS}.items():
        weights = np.zeros((EMBEDDING_DIM, spec.classes))
        bias = np.full(spec.classes, SILENT_BIAS)
        for column, audio_kind in enumerate(AUDIO_KINDS):
            index = CLASSES[kind][audio_kind][0]
            weights[:, index], bias[index] = w[:, column], b[column]
        heads[kind] = (weights, bias)
    return Trained(center, scale, projection, heads)


def build_effnet(models_dir: Path) -> None:
    """The embedding model with its genre layer, and its metadata."""
    t = trained()
    _save(
        _effnet(t.center, t.scale, t.projection, *t.heads["genres"]), models_dir / EFFNET.model_file
    )
    _write_metadata(EFFNET, models_dir, "EffnetDiscogs")


def build_head(models_dir: Path, kind: str, tf_names: bool = False) -> None:
    """A mood/theme or instrument head and its metadata. `tf_names` uses the TensorFlow-style
    names (model/Placeholder:0 -> model/Sigmoid:0)."""
    _save(_head(kind, *trained().heads[kind], tf_names), models_dir / HEADS[kind].model_file)
    _write_metadata(HEADS[kind], models_dir, kind)


def build_all(models_dir: Path) -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    build_effnet(models_dir)
    build_head(models_dir, "moods")
    build_head(models_dir, "instruments", tf_names=True)
    return models_dir


def edit_last_layers(models_dir: Path, edit: Callable[[str, str, np.ndarray], np.ndarray]) -> None:
    """Rewrite every model file's last-layer tensors (LAST_LAYER) as `edit(kind, name, values)`
    returns them; the metadata is left as it is."""
    for kind, spec in {"genres": EFFNET, **HEADS}.items():
        path = models_dir / spec.model_file
        model = onnx.load(str(path))
        for tensor in model.graph.initializer:
            if tensor.name in LAST_LAYER[kind]:
                values = edit(kind, tensor.name, numpy_helper.to_array(tensor).copy())
                tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
        _save(model, path)


def swap_classes(models_dir: Path) -> None:
    """Exchange the last-layer weights and bias of the two trained classes in every model
    file: a tagger that reads its input then names the other class."""

    def swap(kind: str, _name: str, values: np.ndarray) -> np.ndarray:
        a, b = (CLASSES[kind][audio_kind][0] for audio_kind in AUDIO_KINDS)
        values[..., [a, b]] = values[..., [b, a]]
        return values

    edit_last_layers(models_dir, swap)
