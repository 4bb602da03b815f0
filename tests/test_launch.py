from __future__ import annotations

from pathlib import Path

import pytest

from musicgen_ft.errors import TrainingError
from training.launch import (
    Topology,
    checkpoint_of,
    dora_command,
    experiment_folder,
    launch_command,
    run_training,
)


def test_ddp_flag_only_with_several_processes() -> None:
    assert "-d" not in dora_command(["a=1"], 1)
    cmd = dora_command(["a=1"], 8)
    assert cmd[cmd.index("run") + 1 :] == ["-d", "--ddp_workers", "8", "a=1"]


def test_torchrun_standalone_and_multi_node_commands() -> None:
    single = launch_command(["a=1"], Topology(device="cuda", world_size=8, launcher="torchrun"))
    assert single[1:6] == [
        "-m", "torch.distributed.run", "--nproc_per_node=8", "--standalone", "-m",
    ]  # fmt: skip
    assert single[6:] == ["training.solver_main", "a=1"]
    multi = launch_command(
        ["a=1"],
        Topology(device="cuda", world_size=16, nnodes=2, node_rank=1,
                 rdzv_endpoint="node0:29500"),
    )  # fmt: skip
    assert "--nproc_per_node=8" in multi and "--nnodes=2" in multi and "--node_rank=1" in multi
    assert "--rdzv_endpoint=node0:29500" in multi and "--standalone" not in multi
    assert launch_command(["a=1"], Topology(device="cuda", world_size=8))[3:5] == [
        "-P", "training",
    ]  # fmt: skip


def test_failed_run_surfaces_exit_code_and_log_tail(tmp_path: Path) -> None:
    lines: list[str] = []
    with pytest.raises(TrainingError) as err:
        run_training(
            [
                "solver=musicgen/musicgen_base_32khz",
                "dset=audio/musicgen_ft",
                "optim.optimizer=not_an_optimizer",
            ],
            topology=Topology(device="cpu", world_size=1),
            dora_dir=tmp_path / "dora",
            log_path=tmp_path / "training.log",
            on_line=lines.append,
        )
    assert err.value.returncode not in (None, 0)
    assert "exited with code" in str(err.value)
    assert err.value.log_tail and err.value.log_tail in str(err.value)
    assert lines and (tmp_path / "training.log").read_text().startswith("$ ")


def test_experiment_folder_is_the_signature_of_the_overrides(tmp_path: Path) -> None:
    base = ["solver=musicgen/musicgen_base_32khz", "dset=audio/musicgen_ft"]
    first = experiment_folder([*base, "optim.epochs=2"], tmp_path)
    assert first.parent == tmp_path / "xps"
    assert experiment_folder([*base, "optim.epochs=2"], tmp_path) == first
    assert experiment_folder([*base, "optim.epochs=3"], tmp_path) != first
    with pytest.raises(TrainingError, match="without a checkpoint"):
        checkpoint_of(first)
