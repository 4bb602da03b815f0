"""Tiny stand-ins of Essentia's ONNX taggers: same file names, formats, tensor names and widths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from labeling.taggers import EFFNET, EMBEDDING_DIM, HEADS, ModelSpec

OPSET = 17


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _classes(spec: ModelSpec, favourite: int) -> list[str]:
    names = [f"class{i}" for i in range(spec.classes)]
    if spec.kind == "genres":
        names = [f"Genre{i % 7}---Style {i}" for i in range(spec.classes)]
        names[favourite] = "Electronic---Deep House"
    elif spec.kind == "moods":
        names[favourite] = "dark"
    else:
        names[favourite] = "piano"
    return names


def build_effnet(models_dir: Path, favourite: int = 5) -> None:
    """melspectrogram (n,128,96) -> embeddings (n,1280), activations (n,400) with class
    `favourite` always on top."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(
        rng.standard_normal((96, EMBEDDING_DIM)).astype(np.float32) * 0.01, "w1"
    )
    w2 = numpy_helper.from_array(np.zeros((EMBEDDING_DIM, EFFNET.classes), np.float32), "w2")
    bias = np.full(EFFNET.classes, -4.0, np.float32)
    bias[favourite], bias[favourite + 1] = 3.0, 0.0
    b2 = numpy_helper.from_array(bias, "b2")
    nodes = [
        helper.make_node("ReduceMean", ["melspectrogram"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["pooled", "w1"], ["embeddings"]),
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
        [w1, w2, b2],
    )
    _save(graph, models_dir / EFFNET.model_file)
    meta = {"name": "EffnetDiscogs", "classes": _classes(EFFNET, favourite)}
    (models_dir / EFFNET.metadata_file).write_text(json.dumps(meta))


def build_head(models_dir: Path, kind: str, favourite: int = 2, tf_names: bool = False) -> None:
    """embeddings (n,1280) -> sigmoid activations with class `favourite` on top. `tf_names`
    uses the TensorFlow-style names (model/Placeholder:0 -> model/Sigmoid:0)."""
    spec = HEADS[kind]
    x, y = ("model/Placeholder:0", "model/Sigmoid:0") if tf_names else ("embeddings", "activations")
    bias = np.full(spec.classes, -4.0, np.float32)
    bias[favourite] = 2.0
    w = numpy_helper.from_array(np.zeros((EMBEDDING_DIM, spec.classes), np.float32), "w")
    b = numpy_helper.from_array(bias, "b")
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
        [w, b],
    )
    _save(graph, models_dir / spec.model_file)
    meta = {"name": kind, "classes": _classes(spec, favourite)}
    (models_dir / spec.metadata_file).write_text(json.dumps(meta))


def build_all(models_dir: Path) -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    build_effnet(models_dir)
    build_head(models_dir, "moods")
    build_head(models_dir, "instruments", tf_names=True)
    return models_dir
