"""Data-parallel training through Dora's DDP workers, on two CPU processes (gloo)."""

from __future__ import annotations

from pathlib import Path

import pytest
from spine_support import quick_inputs

from musicgen_ft.pipeline import run_job
from training.launch import Topology, detect_topology

pytestmark = pytest.mark.slow


def test_two_cpu_processes_train_one_model(example_archive: Path, tmp_path: Path) -> None:
    inputs = quick_inputs(example_archive, batch_size=3)
    result = run_job(inputs, tmp_path, Topology(device="cpu", world_size=2), keep_work=True)
    training = result.metadata["training"]
    # 3 does not split over 2 processes: adjusted down, logged and recorded, never to 0.
    assert training["batch_size"] == 2 and training["world_size"] == 2
    assert any("does not divide by the 2" in note for note in training["notes"])
    xp = next((tmp_path / "work" / "train" / "dora" / "xps").iterdir())
    rank1 = (xp / "worker_1.log").read_text()
    assert "Distributed init: 1/2" in (xp / "solver.log.1").read_text()
    assert "Traceback" not in rank1
    assert result.tar_path.is_file()


def test_torchrun_launcher_trains_on_two_cpu_processes(
    example_archive: Path, tmp_path: Path
) -> None:
    inputs = quick_inputs(example_archive)
    topology = Topology(device="cpu", world_size=2, launcher="torchrun")
    result = run_job(inputs, tmp_path, topology, keep_work=True)
    assert result.tar_path is not None and result.tar_path.is_file()
    log = (tmp_path / "training.log").read_text()
    assert "torch.distributed.run" in log.splitlines()[0]
    xp = next((tmp_path / "work" / "train" / "dora" / "xps").iterdir())
    assert "Distributed init: 1/2" in (xp / "solver.log.1").read_text()


def test_topology_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from musicgen_ft.errors import InputError

    monkeypatch.setenv("MUSICGEN_FT_CPU_PROCESSES", "2")
    monkeypatch.setenv("MUSICGEN_FT_NNODES", "3")
    monkeypatch.setenv("MUSICGEN_FT_NODE_RANK", "1")
    monkeypatch.setenv("MUSICGEN_FT_RDZV_ENDPOINT", "node0.invalid:29500")  # never contacted
    topology = detect_topology()
    assert (topology.world_size, topology.nproc_per_node, topology.launcher) == (6, 2, "torchrun")
    assert not topology.writes_checkpoints
    monkeypatch.delenv("MUSICGEN_FT_RDZV_ENDPOINT")
    with pytest.raises(InputError, match="needs MUSICGEN_FT_RDZV_ENDPOINT"):
        detect_topology()
