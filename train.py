"""Fine-tune MusicGen: Cog's `train()` and a command line with the same inputs.

    python train.py --dataset_path songs.zip --model_version small --output_dir runs/mine

A thin edge: all the work happens in musicgen_ft.pipeline.run_job. The parameters Cog sees are
built from the one inputs table (musicgen_ft/inputs.py), so no default or bound is repeated here.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path as _Path
from typing import Any

from cog import BaseModel, Path

from musicgen_ft.inputs import TrainInputs
from musicgen_ft.schema import cog_entry_point, cog_parameters


class TrainingOutput(BaseModel):
    weights: Path


def train(**inputs: Any) -> TrainingOutput:
    """Cog's training entry point; its parameters are TrainInputs' fields."""
    from musicgen_ft.logs import setup_logging
    from musicgen_ft.pipeline import run_job

    values = {k: (str(v) if isinstance(v, _Path) else v) for k, v in inputs.items()}
    job = TrainInputs.from_dict({k: v for k, v in values.items() if v is not None})
    output_dir = _Path(tempfile.mkdtemp(prefix="musicgen-ft-"))
    setup_logging(output_dir / "job.log")
    result = run_job(job, output_dir)
    print(result.times.table())
    assert result.tar_path is not None, "Cog runs single-node jobs"
    return TrainingOutput(weights=Path(result.tar_path))


cog_entry_point(train, cog_parameters(TrainInputs), TrainingOutput)


if __name__ == "__main__":
    from musicgen_ft.train_cli import main

    sys.exit(main())
