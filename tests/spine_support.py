"""Inputs of the short CPU fine-tunes several tests run (tiny model, a couple of updates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from musicgen_ft.inputs import TrainInputs


def quick_inputs(archive: Path, **changes: Any) -> TrainInputs:
    """`debug` for 2 updates with adamw, no Demucs or Essentia; `changes` override fields."""
    values: dict[str, Any] = {
        "dataset_path": str(archive),
        "model_version": "debug",
        "drop_vocals": False,
        "auto_labeling": False,
        "epochs": 1,
        "updates_per_epoch": 2,
        "batch_size": 2,
        "optimizer": "adamw",
        "lr": 1e-3,
        # One short listening sample pair (fine-tune, base): the samples stage runs.
        "sample_prompts": 1,
        "sample_duration": 1.0,
    }
    values.update(changes)
    return TrainInputs(**values)
