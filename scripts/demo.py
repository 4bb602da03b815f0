"""`make demo`: a real fine-tune of the `debug` model on the bundled example, offline, then one
generated clip from the result. Prints where both are, a per-stage timing table and peak memory
(the quality report's line, fine-tune vs base, is in the log above them).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from make_example_dataset import write_dataset  # noqa: E402

from inference.generate import GenerateParams, generate, write_audio  # noqa: E402
from inference.loading import load_model  # noqa: E402
from musicgen_ft.errors import FineTuneError  # noqa: E402
from musicgen_ft.inputs import TrainInputs  # noqa: E402
from musicgen_ft.logs import setup_logging  # noqa: E402
from musicgen_ft.pipeline import peak_memory_mb, run_job  # noqa: E402

DEMO_DIR = ROOT / "demo"


def main() -> int:
    run_dir = DEMO_DIR / "run"
    # a fresh work dir each time: the job refuses an output dir that holds another job's files
    shutil.rmtree(run_dir, ignore_errors=True)
    setup_logging(run_dir / "job.log")
    dataset = write_dataset(DEMO_DIR / "example_dataset.zip")
    inputs = TrainInputs(
        dataset_path=str(dataset),
        model_version="debug",
        drop_vocals=False,  # Demucs weights are not available offline
        # 100 AdamW updates at a learning rate for a tiny model: enough for the quality report
        # to show the fine-tune nearer the example than its base (2 x 5 D-Adaptation updates
        # were not)
        epochs=4,
        updates_per_epoch=25,
        batch_size=4,
        optimizer="adamw",
        lr=3e-3,
        sample_prompts=2,  # listening samples (fine-tune and base) in the tar
        sample_duration=4.0,
    )
    result = run_job(inputs, run_dir)
    times = result.times
    assert result.tar_path is not None
    with times.stage("predict"):
        loaded = load_model(result.tar_path)
        params = GenerateParams(prompt="warm ambient pad in C major", duration=8.0, seed=0)
        wav = generate(loaded, params)
        clip = write_audio(
            wav,
            loaded.model.sample_rate,
            DEMO_DIR / "clip.wav",
            "wav",
            params.normalization_strategy,
        )
    memory = peak_memory_mb()
    print()
    print(f"trained model : {result.tar_path}")
    print(
        f"generated clip: {clip} ({wav.shape[-1] / loaded.model.sample_rate:.1f} s, "
        f"{loaded.model.sample_rate} Hz, {wav.shape[0]} channel(s))"
    )
    print(f"logs          : {run_dir / 'job.log'}, {run_dir / 'training.log'}")
    print()
    print(times.table())
    print(
        f"peak memory: demo process {memory['pipeline_mb']:.0f} MB, "
        f"training process {memory['training_mb']:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    start = time.time()
    try:
        code = main()
    except FineTuneError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"wall time: {time.time() - start:.0f} s")
    sys.exit(code)
