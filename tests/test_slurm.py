"""MUSICGEN_FT_LAUNCHER=slurm: the solver runs as a SLURM job submitted through Dora's Shepherd,
tested against a real one-node cluster (tests/slurm_support.py) where Slurm is installed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_support import MAX_MINUTES, Cluster, missing_binaries, slurm_cluster

from musicgen_ft.errors import InputError, TrainingError
from training import slurm
from training.launch import PROJECT_ROOT, Topology, detect_topology, run_training

BASE = ["solver=musicgen/musicgen_base_32khz", "dset=audio/musicgen_ft"]


def _clear_slurm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("MUSICGEN_FT_SLURM_", "MUSICGEN_FT_CPU_", "SLURM_")):
            monkeypatch.delenv(name)


def test_settings_map_to_sbatch_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from submitit.slurm.slurm import _make_sbatch_string

    _clear_slurm_env(monkeypatch)
    for name, value in {"NODES": "2", "GPUS_PER_NODE": "4", "PARTITION": "gpu", "TIME": "90",
                        "CPUS_PER_TASK": "8", "MEM_GB": "200", "ACCOUNT": "acct", "QOS": "high",
                        "CONSTRAINT": "h100"}.items():  # fmt: skip
        monkeypatch.setenv(f"MUSICGEN_FT_SLURM_{name}", value)
    settings = slurm.SlurmSettings.from_env()
    script = _make_sbatch_string("python -m x", tmp_path, **settings.sbatch_parameters())
    lines = {line for line in script.splitlines() if line.startswith("#SBATCH")}
    expected = ["--nodes=2", "--ntasks-per-node=4", "--gres=gpu:4", "--cpus-per-task=8",
                "--mem=200GB", "--time=90", "--partition=gpu", "--account=acct", "--qos=high",
                "--constraint=h100"]  # fmt: skip
    assert lines >= {f"#SBATCH {flag}" for flag in expected}
    # 8 training processes on 2 nodes, launched by SLURM (not rerouted to torchrun).
    topology = settings.topology()
    assert (topology.world_size, topology.nnodes, topology.nproc_per_node) == (8, 2, 4)
    assert (topology.device, topology.launcher) == ("cuda", "slurm")
    assert settings.for_topology(topology) == settings

    # Without GPUs: MUSICGEN_FT_CPU_PROCESSES CPU tasks per node, 1 CPU each, no gres.
    monkeypatch.setenv("MUSICGEN_FT_SLURM_GPUS_PER_NODE", "0")
    monkeypatch.setenv("MUSICGEN_FT_CPU_PROCESSES", "3")
    monkeypatch.delenv("MUSICGEN_FT_SLURM_CPUS_PER_TASK")
    cpu = slurm.SlurmSettings.from_env().sbatch_parameters()
    assert (cpu["ntasks_per_node"], cpu["cpus_per_task"], "gres" in cpu) == (3, 1, False)
    assert slurm.SlurmSettings.from_env().topology().device == "cpu"


def test_job_environment_is_the_local_solvers(tmp_path: Path) -> None:
    setup = slurm.job_setup(tmp_path / "dora")
    assert setup[0] == f"cd {PROJECT_ROOT}"
    assert f"export AUDIOCRAFT_DORA_DIR={tmp_path / 'dora'}" in setup
    assert "export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1" in setup
    # The trainer's own rendezvous port must not reach the job: Dora derives one per job.
    assert not any(line.startswith("export MASTER_PORT") for line in setup)
    assert setup[-1] == "unset MASTER_ADDR MASTER_PORT WORLD_SIZE RANK LOCAL_RANK"


def test_sinfo_and_scontrol_parsing() -> None:
    parts = slurm.parse_sinfo(
        "debug*|1|1:00:00|(null)\ngpu|3|2-00:00:00|gpu:8\ngpu|1|2-00:00:00|gpu:8\nlong|2|infinite|(null)"
    )
    assert parts["debug"].default and parts["debug"].max_minutes == 60
    assert not parts["debug"].has_gpus and parts["gpu"].has_gpus
    assert (parts["gpu"].nodes, parts["gpu"].max_minutes) == (4, 2 * 24 * 60)
    assert parts["long"].max_minutes is None
    state = slurm.parse_scontrol("JobId=7 JobState=CANCELLED Reason=None ExitCode=0:15 X=a=b")
    assert (state.name, state.reason, state.final) == ("CANCELLED", "", True)
    assert slurm._returncode(state) == 128 + 15
    pending = slurm.parse_scontrol("JobId=8 JobState=PENDING Reason=PartitionTimeLimit")
    assert not pending.final and slurm.NEVER_STARTS[pending.reason] == slurm.TIME_ENV


def test_bad_settings_fail_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clear_slurm_env(monkeypatch)
    monkeypatch.setenv("MUSICGEN_FT_LAUNCHER", "slurm")
    monkeypatch.setenv("MUSICGEN_FT_SLURM_NODES", "0")
    with pytest.raises(
        InputError, match=r"^MUSICGEN_FT_SLURM_NODES: .*'0' must be an integer >= 1"
    ):
        detect_topology()
    monkeypatch.setenv("MUSICGEN_FT_SLURM_NODES", "1")
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm commands here
    with pytest.raises(InputError) as err:
        detect_topology()
    message = str(err.value)
    assert message.startswith("MUSICGEN_FT_LAUNCHER: MUSICGEN_FT_LAUNCHER=slurm but sbatch")
    assert "is not on PATH" in message and "\n" not in message


# --- against a real cluster --------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)}): scripts/setup.sh installs it")
    with slurm_cluster() as started:
        yield started


@pytest.fixture
def on_cluster(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """The trainer's environment pointed at the test cluster, CPU tasks."""
    _clear_slurm_env(monkeypatch)
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    monkeypatch.setenv("MUSICGEN_FT_LAUNCHER", "slurm")
    monkeypatch.setenv("MUSICGEN_FT_SLURM_GPUS_PER_NODE", "0")
    monkeypatch.setenv("MUSICGEN_FT_SLURM_TIME", "10")
    monkeypatch.setenv("MUSICGEN_FT_SLURM_POLL_S", "1")
    return cluster


@pytest.mark.slow
def test_cluster_refuses_what_it_cannot_run(
    on_cluster: Cluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    refused = {
        "MUSICGEN_FT_SLURM_PARTITION=nope": "not a partition of this cluster (sinfo lists: debug)",
        "MUSICGEN_FT_SLURM_GPUS_PER_NODE=1": "partition 'debug' has no GPUs",
        "MUSICGEN_FT_SLURM_NODES=2": "partition 'debug' has 1 node(s)",
        f"MUSICGEN_FT_SLURM_TIME={MAX_MINUTES + 1}": f"partition 'debug' ({MAX_MINUTES} minutes)",
    }
    for setting, reason in refused.items():
        name, value = setting.split("=")
        with monkeypatch.context() as patch:
            patch.setenv(name, value)
            with pytest.raises(InputError) as err:
                detect_topology()
        assert str(err.value).startswith(f"{name}: {setting} ") and reason in str(err.value)
    assert detect_topology() == Topology(device="cpu", world_size=1, launcher="slurm")

    # What only sbatch knows (here: more memory than the node has) is refused at submission.
    monkeypatch.setenv("MUSICGEN_FT_SLURM_MEM_GB", "100000")
    with pytest.raises(InputError, match=r"sbatch refused the job: .*Memory specification"):
        run_training(BASE, detect_topology(), tmp_path / "dora", tmp_path / "training.log")


@pytest.mark.slow
def test_failed_job_raises_training_error_with_the_log_tail(
    on_cluster: Cluster, tmp_path: Path
) -> None:
    lines: list[str] = []
    with pytest.raises(TrainingError) as err:
        run_training(
            [*BASE, "optim.optimizer=not_an_optimizer"],
            Topology(device="cpu", world_size=1, launcher="slurm"),
            dora_dir=tmp_path / "dora",
            log_path=tmp_path / "training.log",
            on_line=lines.append,
        )
    match = re.search(r"SLURM job (\d+) ended FAILED, exit code 1:0 \(full log: ", str(err.value))
    assert match, str(err.value)
    assert err.value.returncode == 1
    assert "not_an_optimizer" in err.value.log_tail and lines
    assert on_cluster.ended_jobs()[match.group(1)]["JobState"] == "FAILED"
    assert (tmp_path / "training.log").read_text().startswith(f"$ sbatch (SLURM job {match[1]}:")


@pytest.mark.slow
def test_stopped_job_is_cancelled_and_resumes_as_a_two_task_slurm_job(
    on_cluster: Cluster, example_archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable, "train.py", "--dataset_path", str(example_archive),
        "--model_version", "debug", "--drop_vocals", "false", "--auto_labeling", "false",
        "--epochs", "3", "--updates_per_epoch", "2", "--batch_size", "2",
        "--optimizer", "adamw", "--lr", "1e-3", "--sample_prompts", "0",
        "--output_dir", str(out),
    ]  # fmt: skip
    first_err = tmp_path / "first.stderr"
    with first_err.open("wb") as err:
        first = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err
        )
    xps = out / "work" / "train" / "dora" / "xps"
    deadline = time.monotonic() + 240
    while not list(xps.glob("*/checkpoint.th")):
        assert first.poll() is None, f"the first run ended: {first_err.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no checkpoint after 240 s"
        time.sleep(0.2)
    [xp] = xps.iterdir()
    first_job = json.loads((xp / "job.json").read_text())["job_id"]
    assert on_cluster.job_state(first_job) == "RUNNING"
    first.send_signal(signal.SIGTERM)  # what the server's cancel sends
    first.wait(timeout=60)
    stderr = first_err.read_text()
    assert first.returncode == -signal.SIGTERM, stderr[-3000:]
    assert f"cancelling SLURM job {first_job}" in stderr
    # Re-run at once: the new run waits for the cancelled job to end, then submits its own.
    assert not (out / "trained_model.tar").exists()

    # The same job again, now with two CPU tasks: a new SLURM job resumes the checkpoint.
    env = {**os.environ, "MUSICGEN_FT_CPU_PROCESSES": "2"}
    second = subprocess.run(
        cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from the checkpoint" in second.stderr
    log = (out / "training.log").read_text()
    [second_job] = re.findall(r"^\$ sbatch \(SLURM job (\d+): 1 node\(s\) x 2 task\(s\)", log, re.M)
    assert second_job != first_job
    jobs = on_cluster.ended_jobs()
    assert jobs[first_job]["JobState"] == "CANCELLED"
    assert (jobs[second_job]["JobState"], jobs[second_job]["ProcCnt"]) == ("COMPLETED", "2")
    assert "Checkpoint loaded from" in log
    # Dora took the world size and rank from the SLURM job's environment.
    assert "Distributed init: 0/2 (local 0) from submitit" in log
    with tarfile.open(out / "trained_model.tar") as tar:
        meta = json.loads(tar.extractfile("metadata.json").read())  # type: ignore[union-attr]
    assert (meta["training"]["launcher"], meta["training"]["world_size"]) == ("slurm", 2)
    assert len(meta["history"]) == 3
