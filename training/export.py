"""Export a fine-tune: `trained_model.tar`, a real tar archive written atomically.

Layout (documented in docs/trained_model.md):

    trained_model.tar
    ├── state_dict.bin    the fine-tuned LM in the released MusicGen format
    │                     ({"best_state", "xp.cfg", "version", "exported"})
    ├── xp.cfg            the solver config of the fine-tune (YAML)
    ├── metadata.json     inputs, base model, dataset report, versions, timings, metrics,
    │                     and the lists of samples and curves below
    ├── samples/NN_finetuned.wav, samples/NN_base.wav
    │                     listening samples: fine-tune and base model, same prompt and seed
    ├── curves/loss.csv, curves/loss.png
    │                     train (logged steps, epochs) and held-out (epochs) ce / ppl
    └── lora_adapter.safetensors
                          LoRA fine-tunes only: the adapters alone (training/lora.py); the
                          state_dict.bin above holds them merged into the weights

Extracted into a folder next to the base model's `compression_state_dict.bin`, it loads with
stock `MusicGen.get_pretrained(folder)` (inference/loading.py does exactly that).
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from musicgen_ft.atomic import atomic_write_bytes_from
from musicgen_ft.errors import TrainingError
from musicgen_ft.variants import LM_FILE, Variant

METADATA_FILE = "metadata.json"
CONFIG_FILE = "xp.cfg"


def versions() -> dict[str, str]:
    """Versions of what produced a fine-tune (recorded in its metadata)."""
    import platform

    from audiocraft import __version__ as ac_version

    from musicgen_ft import __version__

    return {
        "musicgen_ft": __version__,
        "audiocraft": ac_version,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def job_metadata(
    *,
    inputs: dict[str, Any],
    variant: Variant,
    dataset: dict[str, Any],
    split: dict[str, Any],
    vocabulary: dict[str, Any],
    training: dict[str, Any],
    timings: dict[str, float],
) -> dict[str, Any]:
    """The `metadata.json` of a trained_model.tar (see docs/trained_model.md)."""
    return {
        "format": 1,
        "inputs": inputs,
        "model_version": variant.name,
        "base_model": {"name": variant.name, "hf_repo": variant.hf_repo},
        "sample_rate": variant.sample_rate,
        "channels": variant.channels,
        "dataset": dataset,
        "split": split,
        "vocabulary": vocabulary,
        "training": training,
        "versions": versions(),
        "timings": timings,
    }


def export_lm(checkpoint: Path) -> tuple[dict[str, Any], str, bytes | None]:
    """Return the released-format LM package of a solver checkpoint, its config YAML and, for a
    LoRA fine-tune, the adapter file's bytes (safetensors).

    The weights are the solver's best state: the model at its lowest validation loss (the
    EMA weights when EMA was on), with LoRA adapters merged in. The checkpoint was written by
    this job's own run, so it is loaded with `weights_only=False` (it holds an OmegaConf config).
    """
    from audiocraft import __version__ as ac_version

    from training import lora

    try:
        # Memory-mapped: only the best state's tensors are read, not the whole checkpoint
        # (optimizer state and last weights, several times the model for a 1.5B variant).
        pkg = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)
    except Exception as exc:
        raise TrainingError(f"cannot read the training checkpoint {checkpoint}: {exc}") from None
    best = pkg.get("fsdp_best_state") or pkg.get("best_state")
    if not best or "model" not in best:
        raise TrainingError(f"the checkpoint {checkpoint} has no best state to export")
    cfg_yaml = OmegaConf.to_yaml(pkg["xp.cfg"])
    weights, adapter = best["model"], None
    if lora.is_lora_state(weights):
        from safetensors.torch import save

        tensors = lora.adapter_tensors(weights)
        meta = {"rank": str(lora.rank_of(tensors)), "targets": ",".join(lora.TARGETS)}
        adapter = save(tensors, metadata=meta)
        weights = lora.merge(weights)
    lm_pkg = {
        "best_state": weights,
        "xp.cfg": cfg_yaml,
        "version": ac_version,
        "exported": True,
    }
    return lm_pkg, cfg_yaml, adapter


def read_history(xp_dir: Path) -> list[dict[str, Any]]:
    """Per-epoch metrics Dora recorded for the run (train/valid cross-entropy, ...)."""
    path = xp_dir / "history.json"
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return []
    return data if isinstance(data, list) else []


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_tar(
    out_path: Path,
    xp_dir: Path,
    metadata: dict[str, Any],
    files: Mapping[str, Path] | None = None,
) -> Path:
    """Write `trained_model.tar` for the experiment in `xp_dir` (its best state), with `files`
    (tar name -> local file) beside it; return its path. `metadata` is written as given."""
    from training.lora import ADAPTER_FILE

    lm_pkg, cfg_yaml, adapter = export_lm(xp_dir / "checkpoint.th")
    buffer = io.BytesIO()
    torch.save(lm_pkg, buffer)
    lm_bytes = buffer.getvalue()

    def write(tmp: Path) -> None:
        with tarfile.open(tmp, "w") as tar:
            _add_bytes(tar, LM_FILE, lm_bytes)
            _add_bytes(tar, CONFIG_FILE, cfg_yaml.encode("utf-8"))
            if adapter is not None:
                _add_bytes(tar, ADAPTER_FILE, adapter)
            for name, path in (files or {}).items():
                tar.add(str(path), arcname=name, recursive=False)
            _add_bytes(
                tar, METADATA_FILE, json.dumps(metadata, indent=2, default=str).encode("utf-8")
            )

    atomic_write_bytes_from(out_path, write)
    return out_path


def add_results(tar_path: Path, files: Mapping[str, Path], metadata: dict[str, Any]) -> Path:
    """Rewrite `tar_path` with `files` (tar name -> local file) added and `metadata.json`
    replaced; the members already there are copied through, not loaded. Atomic."""

    def write(tmp: Path) -> None:
        with tarfile.open(tar_path, "r") as old, tarfile.open(tmp, "w") as new:
            for member in old:
                if member.name == METADATA_FILE or member.name in files:
                    continue
                new.addfile(member, old.extractfile(member) if member.isfile() else None)
            for name, path in files.items():
                new.add(str(path), arcname=name, recursive=False)
            _add_bytes(
                new, METADATA_FILE, json.dumps(metadata, indent=2, default=str).encode("utf-8")
            )

    atomic_write_bytes_from(tar_path, write)
    return tar_path


def read_metadata(tar_path: Path) -> dict[str, Any]:
    with tarfile.open(tar_path, "r") as tar:
        member = tar.extractfile(METADATA_FILE)
        if member is None:
            raise TrainingError(f"{tar_path} has no {METADATA_FILE}")
        return json.loads(member.read().decode("utf-8"))
