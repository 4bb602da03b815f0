"""Run AudioCraft's MusicGen solver through Dora as a checked subprocess."""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from musicgen_ft.children import stop_with_parent
from musicgen_ft.constants import user_name
from musicgen_ft.errors import InputError, TrainingError

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL_LINES = 40


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@dataclass(frozen=True)
class Topology:
    """Where the training processes run.

    Attributes:
        device: "cuda" or "cpu".
        world_size: Training processes over all nodes (one per GPU, or CPU processes).
        nnodes: Machines taking part; above 1, every node runs the same job and torchrun
            meets them at `rdzv_endpoint`.
        node_rank: This machine's rank (0 writes the checkpoints and the tar).
        rdzv_endpoint: `host:port` of node 0, for multi-node jobs.
        launcher: "dora" (`dora run`, `-d` for several processes), "torchrun", or "slurm"
            (the solver as a SLURM job: training/slurm.py).
    """

    device: str
    world_size: int
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None
    launcher: str = "dora"

    def __post_init__(self) -> None:
        # The one place that decides it: a multi-node Dora job goes through torchrun.
        if self.nnodes > 1 and self.launcher == "dora":
            object.__setattr__(self, "launcher", "torchrun")

    @property
    def nproc_per_node(self) -> int:
        return self.world_size // self.nnodes

    @property
    def writes_checkpoints(self) -> bool:
        return self.node_rank == 0


CPU_PROCESSES_ENV = "MUSICGEN_FT_CPU_PROCESSES"
NNODES_ENV = "MUSICGEN_FT_NNODES"
NODE_RANK_ENV = "MUSICGEN_FT_NODE_RANK"
RDZV_ENV = "MUSICGEN_FT_RDZV_ENDPOINT"
LAUNCHER_ENV = "MUSICGEN_FT_LAUNCHER"
LAUNCHERS = ("dora", "torchrun", "slurm")


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, str(default)).strip()
    if not raw.isdigit() or int(raw) < minimum:
        raise InputError(name, f"{name}={raw!r} must be an integer >= {minimum}")
    return int(raw)


def detect_topology() -> Topology:
    """Every visible GPU runs one training process; without GPUs, CPU processes (default 1).

    Environment:
        MUSICGEN_FT_CPU_PROCESSES: N data-parallel CPU processes (gloo) on a box without GPUs.
        MUSICGEN_FT_LAUNCHER: `dora` (default), `torchrun` or `slurm` (training/slurm.py).
        MUSICGEN_FT_NNODES, MUSICGEN_FT_NODE_RANK, MUSICGEN_FT_RDZV_ENDPOINT: multi-node
            training: run the same job on every node (node-local or distinct output dirs),
            with node 0's `host:port` as the rendezvous; node 0 writes trained_model.tar.
    """
    gpus = visible_gpus()
    per_node = gpus or _env_int(CPU_PROCESSES_ENV, 1, 1)
    nnodes = _env_int(NNODES_ENV, 1, 1)
    node_rank = _env_int(NODE_RANK_ENV, 0, 0)
    endpoint = os.environ.get(RDZV_ENV) or None
    launcher = os.environ.get(LAUNCHER_ENV, "dora")
    if launcher not in LAUNCHERS:
        raise InputError(LAUNCHER_ENV, f"{LAUNCHER_ENV}={launcher!r}: use dora, torchrun or slurm")
    if launcher == "slurm":  # the job's processes are the SLURM job's tasks
        from training.slurm import slurm_topology

        return slurm_topology()
    if nnodes > 1 and not endpoint:
        raise InputError(RDZV_ENV, f"{NNODES_ENV}={nnodes} needs {RDZV_ENV}=host:port of node 0")
    if node_rank >= nnodes:
        raise InputError(NODE_RANK_ENV, f"{NODE_RANK_ENV}={node_rank} must be < {nnodes}")
    return Topology(
        device="cuda" if gpus else "cpu",
        world_size=per_node * nnodes,
        nnodes=nnodes,
        node_rank=node_rank,
        rdzv_endpoint=endpoint,
        launcher=launcher,
    )


def data_workers(topology: Topology) -> int:
    """Data-loader workers per training process."""
    if topology.device != "cuda":
        return 0
    return max(1, min(4, (os.cpu_count() or 2) // topology.nproc_per_node - 1))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PROGRESS_LINE = re.compile(r"(Train|Valid|Generate|Evaluate)( Summary)? \|")


def forward_training_line(line: str) -> None:
    """Surface the solver's progress lines (steps, loss, rate) in the job's log."""
    clean = _ANSI.sub("", line).strip()
    if not clean:
        return
    if _PROGRESS_LINE.search(clean) or "Error" in clean or "error" in clean:
        logger.info("[train] %s", clean.split(" - ", 1)[-1])
    else:
        logger.debug("[train] %s", clean)


def torchrun_command(overrides: list[str], topology: Topology) -> list[str]:
    """torchrun of our entry point: standalone on one node, c10d rendezvous across nodes."""
    cmd = [sys.executable, "-m", "torch.distributed.run",
           f"--nproc_per_node={topology.nproc_per_node}"]  # fmt: skip
    if topology.nnodes == 1:
        cmd.append("--standalone")
    else:
        assert topology.rdzv_endpoint, "multi-node jobs need a rendezvous endpoint"
        cmd += [
            f"--nnodes={topology.nnodes}",
            f"--node_rank={topology.node_rank}",
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint={topology.rdzv_endpoint}",
            "--rdzv_id=musicgen-ft",
        ]
    return [*cmd, "-m", "training.solver_main", *overrides]


def launch_command(overrides: list[str], topology: Topology) -> list[str]:
    if topology.launcher == "torchrun":
        return torchrun_command(overrides, topology)
    return dora_command(overrides, topology.world_size)


def dora_command(overrides: list[str], world_size: int) -> list[str]:
    """`dora run` of our entry point; with `-d`, one process per GPU (or per CPU worker)."""
    cmd = [sys.executable, "-m", "dora", "-P", "training", "--main_module", "solver_main", "run"]
    if world_size > 1:
        cmd += ["-d", "--ddp_workers", str(world_size)]
    return cmd + list(overrides)


def training_env(dora_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["AUDIOCRAFT_DORA_DIR"] = str(dora_dir)
    # AudioCraft's base config interpolates ${oc.env:USER}.
    env.setdefault("USER", user_name())
    # Solver checkpoints hold an OmegaConf config, which torch's weights_only loader refuses;
    # they are written by this very run, so they are trusted.
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    # Dora derives the DDP port from the experiment's signature, so a resumed run (same
    # signature) can meet its killed predecessor's port still in TIME_WAIT; a free port avoids it.
    env.setdefault("MASTER_PORT", str(free_port()))
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def epochs_done(xp_dir: Path) -> int:
    """Epochs recorded in the experiment's history (what its last checkpoint holds)."""
    try:
        history = json.loads((xp_dir / "history.json").read_text())
    except (OSError, ValueError):
        return 0
    return len(history) if isinstance(history, list) else 0


def run_training(
    overrides: list[str],
    topology: Topology,
    dora_dir: Path,
    log_path: Path,
    on_line: Callable[[str], None] | None = None,
) -> Path:
    """Run the solver; return the experiment folder (holding `checkpoint.th` on node 0).

    Streams the child's output to `log_path` and `on_line`. Raises TrainingError with the
    exit code and the last lines of the log when the run fails.
    """
    dora_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    xp_dir = experiment_folder(overrides, dora_dir)
    if (xp_dir / "checkpoint.th").is_file():
        logger.info(
            "resuming from the checkpoint %s (saved after epoch %d)",
            xp_dir / "checkpoint.th",
            epochs_done(xp_dir),
        )
    if topology.launcher == "slurm":
        from training.slurm import run_slurm_training

        return run_slurm_training(overrides, topology, dora_dir, log_path, xp_dir, on_line)
    cmd = launch_command(overrides, topology)
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    with log_path.open("a", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        process = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=training_env(dora_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            preexec_fn=stop_with_parent,  # a killed job leaves no training processes behind
        )
        assert process.stdout is not None
        try:
            for line in process.stdout:
                log.write(line)
                log.flush()
                tail.append(line.rstrip("\n"))
                if on_line is not None:
                    on_line(line.rstrip("\n"))
            code = process.wait()
        except BaseException:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    if code != 0:
        raise TrainingError(
            f"training failed: `dora run` exited with code {code} (full log: {log_path})",
            log_tail="\n".join(tail),
            returncode=code,
        )
    if topology.writes_checkpoints:
        checkpoint_of(xp_dir)
    return xp_dir


def experiment_folder(overrides: list[str], dora_dir: Path) -> Path:
    """The folder Dora gives this run: `dora_dir/xps/<signature of the overrides>`.

    The same overrides always map to the same folder, which is how a re-run of a stopped job
    resumes from its last checkpoint instead of starting over.
    """
    os.environ.setdefault("USER", user_name())
    from training.solver_main import main

    main.dora.dir = dora_dir
    return Path(main.get_xp(list(overrides)).folder)


def checkpoint_of(xp_dir: Path) -> Path:
    checkpoint = xp_dir / "checkpoint.th"
    if not checkpoint.is_file():
        raise TrainingError(f"training finished without a checkpoint at {checkpoint}")
    return checkpoint
