"""Re-runs that never lie: same job → finished tar returned, no retraining; other inputs or other
data → refused, the old tar untouched; another process count → the same experiment; disk."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from spine_support import quick_inputs

from musicgen_ft.errors import InputError
from musicgen_ft.pipeline import run_job
from training.export import read_metadata
from training.launch import Topology, experiment_folder
from training.overrides import TrainPlan, build_overrides

pytestmark = pytest.mark.slow
CPU = Topology(device="cpu", world_size=1)


def _launches(out: Path) -> int:
    """How many times the solver was started for this output dir (one `$ cmd` line each)."""
    log = out / "training.log"
    return sum(1 for line in log.read_text().splitlines() if line.startswith("$ "))


def test_same_job_again_returns_the_finished_tar_and_another_job_is_refused(
    example_archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    inputs = quick_inputs(example_archive, one_same_description="calm test chords")
    first = run_job(inputs, out, CPU, keep_work=True)
    assert first.tar_path is not None
    xp_dirs = list((out / "work" / "train" / "dora" / "xps").iterdir())
    assert len(xp_dirs) == 1
    # Only checkpoint.th (last and best states in one file): no per-epoch copies pile up.
    assert sorted(p.name for p in xp_dirs[0].glob("checkpoint*.th*")) == ["checkpoint.th"]
    tar_bytes = first.tar_path.read_bytes()
    assert _launches(out) == 1

    again = run_job(inputs, out, CPU)  # the same job: nothing is trained again
    assert again.tar_path == first.tar_path and again.tar_path.read_bytes() == tar_bytes
    assert _launches(out) == 1
    assert read_metadata(again.tar_path)["inputs"]["one_same_description"] == "calm test chords"
    assert not (out / "work").exists()  # removed after success without keep_work

    changed = quick_inputs(example_archive, one_same_description="loud other music")
    with pytest.raises(InputError) as err:
        run_job(changed, out, CPU)
    assert err.value.field == "output_dir" and "one_same_description" in str(err.value)
    assert first.tar_path.read_bytes() == tar_bytes and _launches(out) == 1

    # The same inputs on other audio: another job, refused in this output dir.
    edited = tmp_path / "edited.zip"
    with zipfile.ZipFile(example_archive) as src, zipfile.ZipFile(edited, "w") as dst:
        names = [n for n in src.namelist() if n.endswith((".wav", ".flac"))]
        for name in src.namelist():
            if name != names[0]:  # one file fewer
                dst.writestr(name, src.read(name))
    with pytest.raises(InputError) as err:
        run_job(quick_inputs(edited, one_same_description="calm test chords"), out, CPU)
    assert "other data" in str(err.value)
    assert first.tar_path.read_bytes() == tar_bytes and _launches(out) == 1

    # A new output dir trains the changed job, and its tar says what it was trained with.
    other = run_job(changed, tmp_path / "other", CPU)
    assert other.tar_path is not None
    meta = read_metadata(other.tar_path)
    assert meta["inputs"]["one_same_description"] == "loud other music"
    assert meta["training"]["job_id"] != read_metadata(first.tar_path)["training"]["job_id"]


def test_the_process_count_is_not_part_of_the_experiment(tmp_path: Path) -> None:
    """Dora's signature ignores what follows the world size, but not the job's identity."""
    from musicgen_ft.inputs import TrainInputs
    from musicgen_ft.variants import get_variant

    def folder(world_size: int, job_id: str) -> Path:
        plan = TrainPlan(
            inputs=TrainInputs(dataset_path="d.zip", model_version="debug"),
            variant=get_variant("debug"),
            base_model_dir=tmp_path / "base",
            egs_dir=tmp_path / "egs",
            batch_size=16 // world_size * world_size,
            world_size=world_size,
            device="cpu",
            valid_examples=3,
            num_workers=0 if world_size == 1 else 2,
            job_id=job_id,
        )
        return experiment_folder(build_overrides(plan), tmp_path / "dora")

    one = folder(1, "job-a")
    assert folder(2, "job-a") == one and folder(3, "job-a") == one
    assert folder(1, "job-b") != one
    shutil.rmtree(tmp_path / "dora", ignore_errors=True)
