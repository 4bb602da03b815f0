"""Fine-tune MusicGen: Cog's `train()` and a command line with the same inputs.

    python train.py --dataset_path songs.zip --model_version small --output_dir runs/mine

A thin edge: all the work happens in musicgen_ft.pipeline.run_job.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path as _Path

from cog import BaseModel, Input, Path

from musicgen_ft.inputs import LR_SCHEDULERS, OPTIMIZERS, TrainInputs

_D = {f: TrainInputs.__dataclass_fields__[f] for f in TrainInputs.__dataclass_fields__}
_VERSIONS = list(_D["model_version"].metadata["choices"])


def _desc(name: str) -> str:
    return str(_D[name].metadata["description"])


class TrainingOutput(BaseModel):
    weights: Path


def train(
    dataset_path: Path = Input(description=_desc("dataset_path")),
    model_version: str = Input(
        description=_desc("model_version"), default="stereo-melody", choices=_VERSIONS
    ),
    auto_labeling: bool = Input(description=_desc("auto_labeling"), default=True),
    drop_vocals: bool = Input(description=_desc("drop_vocals"), default=True),
    demucs_model: str = Input(description=_desc("demucs_model"), default="htdemucs"),
    labels_file: Path = Input(description=_desc("labels_file"), default=None),
    one_same_description: str = Input(description=_desc("one_same_description"), default=None),
    epochs: int = Input(description=_desc("epochs"), default=3, ge=1, le=10000),
    updates_per_epoch: int = Input(description=_desc("updates_per_epoch"), default=100, ge=1),
    batch_size: int = Input(description=_desc("batch_size"), default=16, ge=1),
    optimizer: str = Input(
        description=_desc("optimizer"), default="dadam", choices=list(OPTIMIZERS)
    ),
    lr: float = Input(description=_desc("lr"), default=1.0),
    lr_scheduler: str = Input(
        description=_desc("lr_scheduler"), default="cosine", choices=list(LR_SCHEDULERS)
    ),
    warmup: int = Input(description=_desc("warmup"), default=8, ge=0),
    cfg_p: float = Input(description=_desc("cfg_p"), default=0.3, ge=0.0, le=1.0),
    seed: int = Input(description=_desc("seed"), default=2036, ge=0),
    allow_private_urls: bool = Input(description=_desc("allow_private_urls"), default=False),
) -> TrainingOutput:
    from musicgen_ft.logs import setup_logging
    from musicgen_ft.pipeline import run_job

    inputs = TrainInputs(
        dataset_path=str(dataset_path),
        model_version=model_version,
        auto_labeling=auto_labeling,
        drop_vocals=drop_vocals,
        demucs_model=demucs_model,
        labels_file=str(labels_file) if labels_file else None,
        one_same_description=one_same_description,
        epochs=epochs,
        updates_per_epoch=updates_per_epoch,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        lr_scheduler=lr_scheduler,
        warmup=warmup,
        cfg_p=cfg_p,
        seed=seed,
        allow_private_urls=allow_private_urls,
    )
    output_dir = _Path(tempfile.mkdtemp(prefix="musicgen-ft-"))
    setup_logging(output_dir / "job.log")
    result = run_job(inputs, output_dir)
    print(result.times.table())
    assert result.tar_path is not None, "Cog runs single-node jobs"
    return TrainingOutput(weights=Path(result.tar_path))


if __name__ == "__main__":
    from musicgen_ft.train_cli import main

    sys.exit(main())
