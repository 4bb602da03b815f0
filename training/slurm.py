"""Train on a SLURM cluster: the solver runs as a SLURM job, submitted through Dora's Shepherd.

`MUSICGEN_FT_LAUNCHER=slurm` keeps the preparation and labelling where the trainer runs (a
login node, say) and submits only the solver, with submitit, exactly as `dora launch` does: the
XP folder, its signature, `job.pkl` and the submitit logs are Dora's, so a re-run of the same job
finds the same XP and the solver resumes from its checkpoint. The trainer then follows the job:
rank 0's log is copied into the training log as it grows, a job that ends other than COMPLETED
raises the same TrainingError as a failed local run, and a trainer stopped by SIGTERM (or ^C)
cancels its job. A trainer killed outright leaves the job running: the re-run attaches to it.

Environment (read when the job starts):
    MUSICGEN_FT_SLURM_PARTITION: partition (default: the cluster's default partition).
    MUSICGEN_FT_SLURM_NODES: nodes (default 1).
    MUSICGEN_FT_SLURM_GPUS_PER_NODE: GPUs per node, one training task each (default 1); 0 runs
        MUSICGEN_FT_CPU_PROCESSES CPU tasks per node (gloo) instead.
    MUSICGEN_FT_SLURM_TIME: time limit in minutes (default 1200, Dora's); at the limit submitit
        requeues the job, which resumes from its checkpoint.
    MUSICGEN_FT_SLURM_CPUS_PER_TASK: CPUs per task (default 10 with GPUs, Dora's, else 1).
    MUSICGEN_FT_SLURM_MEM_GB: memory per node in GB (default: the cluster's default).
    MUSICGEN_FT_SLURM_ACCOUNT, MUSICGEN_FT_SLURM_QOS, MUSICGEN_FT_SLURM_CONSTRAINT: passed on.
    MUSICGEN_FT_SLURM_POLL_S: seconds between job-state queries (default 5).

The XP folder (under the job's output dir) must be on a file system the nodes share.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import pickle
import pwd
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from musicgen_ft.errors import InputError, TrainingError
from training.launch import (
    CPU_PROCESSES_ENV,
    LAUNCHER_ENV,
    LOG_TAIL_LINES,
    PROJECT_ROOT,
    Topology,
    checkpoint_of,
    training_env,
)

logger = logging.getLogger(__name__)

PARTITION_ENV = "MUSICGEN_FT_SLURM_PARTITION"
NODES_ENV = "MUSICGEN_FT_SLURM_NODES"
GPUS_ENV = "MUSICGEN_FT_SLURM_GPUS_PER_NODE"
TIME_ENV = "MUSICGEN_FT_SLURM_TIME"
CPUS_ENV = "MUSICGEN_FT_SLURM_CPUS_PER_TASK"
MEM_ENV = "MUSICGEN_FT_SLURM_MEM_GB"
ACCOUNT_ENV = "MUSICGEN_FT_SLURM_ACCOUNT"
QOS_ENV = "MUSICGEN_FT_SLURM_QOS"
CONSTRAINT_ENV = "MUSICGEN_FT_SLURM_CONSTRAINT"
POLL_ENV = "MUSICGEN_FT_SLURM_POLL_S"

SLURM_COMMANDS = ("sbatch", "srun", "scontrol", "scancel", "sinfo")
# Job states after which the job never runs again (a requeued job goes back to PENDING).
FINAL_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
     "DEADLINE", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"}
)  # fmt: skip
# Pending reasons of a job that will never start as asked: the setting to change.
NEVER_STARTS = {
    "PartitionTimeLimit": TIME_ENV,
    "PartitionNodeLimit": NODES_ENV,
    "PartitionConfig": PARTITION_ENV,
    "BadConstraints": CONSTRAINT_ENV,
    "InvalidAccount": ACCOUNT_ENV,
    "InvalidQOS": QOS_ENV,
}
# Set by the trainer for its own child processes; a SLURM job's tasks get theirs from Dora.
_NOT_EXPORTED = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK")
# What training_env sets, exported even where the cluster does not pass the environment on.
_EXPORTED = ("AUDIOCRAFT_DORA_DIR", "PYTHONPATH", "PYTHONUNBUFFERED", "USER",
             "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")  # fmt: skip


def _int_env(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    if not raw.isdigit() or int(raw) < minimum:
        raise InputError(name, f"{name}={raw!r} must be an integer >= {minimum}")
    return int(raw)


def _default_cpus(gpus_per_node: int) -> int:
    return 10 if gpus_per_node else 1  # Dora's cpus_per_gpu; one per CPU task


def _str_env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


@dataclass(frozen=True)
class SlurmSettings:
    """What the solver's SLURM job asks for (see the module's docstring for the variables)."""

    nodes: int = 1
    gpus_per_node: int = 1
    tasks_per_node: int = 1
    time_minutes: int = 1200
    cpus_per_task: int = 10
    partition: str | None = None
    mem_gb: int | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    max_requeues: int = 20

    @classmethod
    def from_env(cls) -> SlurmSettings:
        gpus = _int_env(GPUS_ENV, 1, 0)
        mem = _str_env(MEM_ENV)
        return cls(
            nodes=_int_env(NODES_ENV, 1, 1),
            gpus_per_node=gpus,
            tasks_per_node=gpus or _int_env(CPU_PROCESSES_ENV, 1, 1),
            time_minutes=_int_env(TIME_ENV, 1200, 1),
            cpus_per_task=_int_env(CPUS_ENV, _default_cpus(gpus), 1),
            partition=_str_env(PARTITION_ENV),
            mem_gb=None if mem is None else _int_env(MEM_ENV, 0, 1),
            account=_str_env(ACCOUNT_ENV),
            qos=_str_env(QOS_ENV),
            constraint=_str_env(CONSTRAINT_ENV),
        )

    def for_topology(self, topology: Topology) -> SlurmSettings:
        """These settings with the task layout of `topology` (what the batch plan assumed)."""
        gpus = topology.nproc_per_node if topology.device == "cuda" else 0
        return dataclasses.replace(
            self,
            nodes=topology.nnodes,
            gpus_per_node=gpus,
            tasks_per_node=topology.nproc_per_node,
            cpus_per_task=_int_env(CPUS_ENV, _default_cpus(gpus), 1),
        )

    def topology(self) -> Topology:
        return Topology(
            device="cuda" if self.gpus_per_node else "cpu",
            world_size=self.nodes * self.tasks_per_node,
            nnodes=self.nodes,
            launcher="slurm",
        )

    def sbatch_parameters(self) -> dict[str, Any]:
        """Parameters of submitit's SlurmExecutor (each becomes one `#SBATCH` line)."""
        params: dict[str, Any] = {
            "nodes": self.nodes,
            "ntasks_per_node": self.tasks_per_node,
            "cpus_per_task": self.cpus_per_task,
            "time": self.time_minutes,
        }
        optional = {
            "partition": self.partition,
            "gres": f"gpu:{self.gpus_per_node}" if self.gpus_per_node else None,
            "mem": f"{self.mem_gb}GB" if self.mem_gb else None,
            "account": self.account,
            "qos": self.qos,
            "constraint": self.constraint,
        }
        params.update({key: value for key, value in optional.items() if value is not None})
        return params


def _run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class Partition:
    """One partition as `sinfo` lists it."""

    name: str
    default: bool = False
    nodes: int = 0
    gres: set[str] = field(default_factory=set)
    max_minutes: int | None = None  # None: no limit

    @property
    def has_gpus(self) -> bool:
        return any("gpu" in entry for entry in self.gres)


SINFO_FORMAT = "%P|%D|%l|%G"


def _limit_minutes(text: str) -> int | None:
    """sinfo's time limit (`infinite`, `[days-]hours:minutes:seconds`, `minutes:seconds`)."""
    if not text or text[0].isalpha():
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(part) for part in clock.split(":")]
    hours, minutes = (parts[0], parts[1]) if len(parts) == 3 else (0, parts[0])
    return int(days or 0) * 24 * 60 + hours * 60 + minutes


def parse_sinfo(text: str) -> dict[str, Partition]:
    """Partitions from `sinfo --noheader --format=SINFO_FORMAT` (one row per node group)."""
    found: dict[str, Partition] = {}
    for row in text.split():
        name, nodes, limit, gres = [*row.split("|"), "", "", ""][:4]
        default = name.endswith("*")  # sinfo marks the default partition
        name = name.rstrip("*")
        part = found.setdefault(name, Partition(name, default, max_minutes=_limit_minutes(limit)))
        part.nodes += int(nodes) if nodes.isdigit() else 0
        part.gres.add(gres)
    return found


def check_cluster(settings: SlurmSettings) -> None:
    """Refuse, in one line naming the fix, settings this cluster cannot run."""
    missing = [cmd for cmd in SLURM_COMMANDS if shutil.which(cmd) is None]
    if missing:
        raise InputError(
            LAUNCHER_ENV,
            f"{LAUNCHER_ENV}=slurm but {', '.join(missing)} is not on PATH: run the trainer "
            f"on a SLURM login node (Debian: apt-get install slurm-client) or unset {LAUNCHER_ENV}",
        )
    listing = _run(["sinfo", "--all", "--noheader", f"--format={SINFO_FORMAT}"])
    if listing.returncode != 0:
        raise InputError(
            LAUNCHER_ENV,
            f"{LAUNCHER_ENV}=slurm but sinfo cannot reach the cluster: "
            f"{' '.join((listing.stderr or listing.stdout).split())}",
        )
    partitions = parse_sinfo(listing.stdout)
    if settings.partition is not None and settings.partition not in partitions:
        raise InputError(
            PARTITION_ENV,
            f"{PARTITION_ENV}={settings.partition} is not a partition of this cluster "
            f"(sinfo lists: {', '.join(sorted(partitions)) or 'none'})",
        )
    name = settings.partition or next((p.name for p in partitions.values() if p.default), None)
    if name is None:
        raise InputError(
            PARTITION_ENV, f"this cluster has no default partition: set {PARTITION_ENV}"
        )
    part = partitions[name]
    if settings.gpus_per_node and not part.has_gpus:
        raise InputError(
            GPUS_ENV,
            f"{GPUS_ENV}={settings.gpus_per_node} but partition {name!r} has no GPUs "
            f"(no gpu gres): pick a GPU partition with {PARTITION_ENV}, or set {GPUS_ENV}=0 "
            "to train on CPU tasks",
        )
    if settings.nodes > part.nodes:
        raise InputError(
            NODES_ENV,
            f"{NODES_ENV}={settings.nodes} but partition {name!r} has {part.nodes} node(s)",
        )
    if part.max_minutes is not None and settings.time_minutes > part.max_minutes:
        raise InputError(
            TIME_ENV,
            f"{TIME_ENV}={settings.time_minutes} minutes exceeds the time limit of partition "
            f"{name!r} ({part.max_minutes} minutes): set {TIME_ENV}<={part.max_minutes} (a job at "
            "its limit is requeued and resumes from its checkpoint)",
        )


def slurm_topology() -> Topology:
    """The training processes of a SLURM job asked for in the environment, checked."""
    settings = SlurmSettings.from_env()
    check_cluster(settings)
    return settings.topology()


def job_setup(dora_dir: Path) -> list[str]:
    """Shell lines the job runs before its tasks start: the environment a local run gives the
    solver (training_env), from the project root."""
    env = training_env(dora_dir)
    lines = [f"cd {shlex.quote(str(PROJECT_ROOT))}"]
    for key, value in sorted(env.items()):
        if key in _EXPORTED or (key not in _NOT_EXPORTED and os.environ.get(key) != value):
            lines.append(f"export {key}={shlex.quote(value)}")
    lines.append("export SLURM_KILL_BAD_EXIT=1")  # one failed task ends the job (as Dora does)
    lines.append("unset " + " ".join(_NOT_EXPORTED))
    return lines


@dataclass(frozen=True)
class JobState:
    """A SLURM job's state as scontrol (or sacct) reports it; `name` UNKNOWN when neither
    knows the job any more (scontrol forgets it MinJobAge after it ends)."""

    name: str
    exit_code: str = ""
    reason: str = ""

    @property
    def final(self) -> bool:
        return self.name in FINAL_STATES or self.name == "UNKNOWN"


def parse_scontrol(text: str) -> JobState:
    fields = dict(token.split("=", 1) for token in text.split() if "=" in token)
    reason = fields.get("Reason", "None")
    return JobState(fields.get("JobState", "UNKNOWN"), fields.get("ExitCode", ""),
                    "" if reason == "None" else reason)  # fmt: skip


def job_state(job_id: str) -> JobState | None:
    """The job's state; None when the controller did not answer (try again later)."""
    shown = _run(["scontrol", "show", "job", "--oneliner", job_id])
    if shown.returncode == 0 and "JobState=" in shown.stdout:
        return parse_scontrol(shown.stdout)
    if "Invalid job id" not in shown.stderr:
        logger.warning("scontrol show job %s: %s", job_id, " ".join(shown.stderr.split()))
        return None
    if shutil.which("sacct"):
        acct = _run(["sacct", "--noheader", "--allocations", "--parsable2",
                     "--format=State,ExitCode", f"--jobs={job_id}"])  # fmt: skip
        rows = [row for row in acct.stdout.splitlines() if row.strip()]
        if acct.returncode == 0 and rows:
            state, _, code = rows[-1].partition("|")
            return JobState(state.split()[0], code)
    return JobState("UNKNOWN")


def cancel(job_id: str) -> None:
    done = _run(["scancel", job_id])
    if done.returncode != 0:
        logger.warning("scancel %s failed: %s", job_id, done.stderr.strip())


def _returncode(state: JobState) -> int | None:
    code, _, sig = state.exit_code.partition(":")
    if sig.isdigit() and int(sig):
        return 128 + int(sig)
    return int(code) if code.isdigit() else None


def _succeeded(state: JobState, result_file: Path) -> bool:
    if state.name == "COMPLETED":
        return True
    if state.name != "UNKNOWN":
        return False
    # Neither scontrol nor sacct remembers the job: submitit's result file says how it ended.
    try:
        with result_file.open("rb") as handle:
            outcome = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError):
        return False
    return isinstance(outcome, tuple) and bool(outcome) and outcome[0] == "success"


class _Terminated(BaseException):
    """SIGTERM reached the trainer while it followed its job."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


@contextlib.contextmanager
def cancel_when_stopped(job_id: str) -> Iterator[None]:
    """Cancel the job when the trainer is stopped: SIGTERM (the process then still dies of
    SIGTERM, as it would without the job), ^C, or any error while following the job."""
    previous = None
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    except _Terminated:
        logger.warning("stopped: cancelling SLURM job %s", job_id)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM waits for scancel
        cancel(job_id)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        previous = None
        os.kill(os.getpid(), signal.SIGTERM)
        raise SystemExit(128 + signal.SIGTERM) from None
    except BaseException:
        logger.warning("cancelling SLURM job %s", job_id)
        cancel(job_id)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _LogFollower:
    """Copies the new complete lines of a growing file to the training log and `on_line`."""

    def __init__(self, source: Path, log: Any, on_line: Callable[[str], None] | None) -> None:
        self.source, self.log, self.on_line = source, log, on_line
        self.offset = 0
        self.partial = b""
        self.tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)

    def poll(self, final: bool = False) -> None:
        try:
            with self.source.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        if final and self.partial:
            lines, self.partial = [*lines, self.partial], b""
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip("\r")
            self.log.write(line + "\n")
            self.tail.append(line)
            if self.on_line is not None:
                self.on_line(line)
        self.log.flush()


def _shepherd(main: Any, settings: SlurmSettings, setup: list[str]) -> Any:
    """Dora's Shepherd, asking for our node × task layout (Dora's own derives nodes from a
    GPU count, 8 per node, and runs one CPU task without GPUs)."""
    import submitit
    from dora.shep import Shepherd

    class _Shepherd(Shepherd):  # type: ignore[misc]
        def _get_submitit_executor(self, name: str, folder: Path, slurm_config: Any) -> Any:
            executor = submitit.SlurmExecutor(
                folder=folder, max_num_timeout=slurm_config.max_num_timeout
            )
            executor.update_parameters(
                job_name=name, stderr_to_stdout=True, setup=setup, **settings.sbatch_parameters()
            )
            return executor

        def _check_orphans(self) -> None:
            # Dora's asks squeue for os.getlogin(), which fails without a terminal.
            for dirty in self._orphans.iterdir():
                found = _run(
                    [
                        "squeue",
                        "-u",
                        pwd.getpwuid(os.getuid()).pw_name,
                        "-n",
                        dirty.name,
                        "-o",
                        "%i",
                        "-h",
                    ]
                )
                ids = [line.split("_")[0] for line in found.stdout.split()]
                if ids:
                    logger.warning("cancelling orphan SLURM jobs %s of %s", ids, dirty.name)
                    _run(["scancel", *ids])
                dirty.unlink()

    return _Shepherd(main, log=logger.debug)


def _dora_config(settings: SlurmSettings, setup: list[str]) -> Any:
    """Dora's record of the request (job.json); the executor above is what submits it."""
    from dora.conf import SlurmConfig

    return SlurmConfig(
        gpus=settings.nodes * settings.gpus_per_node,
        mem_per_gpu=0,
        time=settings.time_minutes,
        cpus_per_task=settings.cpus_per_task,
        partition=settings.partition or "",
        setup=setup,
        max_num_timeout=settings.max_requeues,
        constraint=settings.constraint or "",
        qos=settings.qos,
        account=settings.account,
    )


def submit(overrides: list[str], settings: SlurmSettings, dora_dir: Path) -> tuple[str, Path]:
    """Submit the solver (or find its job still queued or running); return (job id, rank 0's
    log file)."""
    import submitit
    from dora.conf import SubmitRules

    from training.solver_main import main

    main.dora.dir = dora_dir
    # AudioCraft's config turns on Dora's git_save (run from a clean clone of the repo);
    # the job runs this checkout's code, as `dora run` does.
    main.dora.git_save = False
    setup = job_setup(dora_dir)
    shepherd = _shepherd(main, settings, setup)
    sheep = shepherd.get_sheep_from_argv(list(overrides))
    if sheep.job is not None:
        previous = job_state(sheep.job.job_id)
        while previous is not None and previous.name == "COMPLETING":
            # Ending (a stopped run's job is still being killed): see how, then decide.
            time.sleep(1)
            previous = job_state(sheep.job.job_id)
        if previous is None or not previous.final:
            state = previous.name if previous else "state unknown"
            logger.info("following SLURM job %s of a previous run (%s)", sheep.job.job_id, state)
            return sheep.job.job_id, sheep.log
        sheep.job = None  # ended: a new job resumes from the XP's checkpoint
    shepherd.maybe_submit_lazy(sheep, _dora_config(settings, setup), SubmitRules())
    try:
        shepherd.commit()
    except submitit.core.utils.FailedJobError as err:
        reason = " ".join(str(err).split()) or "no reason given"
        raise InputError(
            "MUSICGEN_FT_SLURM_*",
            f"sbatch refused the job: {reason} (check the MUSICGEN_FT_SLURM_* settings)",
        ) from None
    assert sheep.job is not None
    return sheep.job.job_id, sheep.log


def run_slurm_training(
    overrides: list[str],
    topology: Topology,
    dora_dir: Path,
    log_path: Path,
    xp_dir: Path,
    on_line: Callable[[str], None] | None = None,
) -> Path:
    """training.launch.run_training for MUSICGEN_FT_LAUNCHER=slurm: the solver as a SLURM job."""
    settings = SlurmSettings.from_env().for_topology(topology)
    check_cluster(settings)
    poll_s = float(_int_env(POLL_ENV, 5, 1))
    job_id, job_log = submit(overrides, settings, dora_dir)
    with log_path.open("a", encoding="utf-8") as log:
        log.write(
            f"$ sbatch (SLURM job {job_id}: {settings.nodes} node(s) x "
            f"{settings.tasks_per_node} task(s), partition "
            f"{settings.partition or '(default)'}; job log {job_log})\n"
        )
        log.flush()
        logger.info("training runs as SLURM job %s (log %s)", job_id, job_log)
        follower = _LogFollower(job_log, log, on_line)
        with cancel_when_stopped(job_id):
            state = _follow(job_id, follower, poll_s)
    if not _succeeded(state, job_log.with_name(f"{job_id}_0_result.pkl")):
        detail = f"{state.name}, exit code {state.exit_code}" if state.exit_code else state.name
        raise TrainingError(
            f"training failed: SLURM job {job_id} ended {detail} (full log: {log_path})",
            log_tail="\n".join(follower.tail),
            returncode=_returncode(state),
        )
    if topology.writes_checkpoints:
        checkpoint_of(xp_dir)
    return xp_dir


def _follow(job_id: str, follower: _LogFollower, poll_s: float) -> JobState:
    last: JobState | None = None
    next_query = 0.0
    while True:
        follower.poll()
        if time.monotonic() >= next_query:
            state = job_state(job_id)
            next_query = time.monotonic() + poll_s
            if state is not None and state != last:
                why = f" ({state.reason})" if state.reason else ""
                logger.info("SLURM job %s: %s%s", job_id, state.name, why)
                last = state
            if state is not None and state.final:
                follower.poll(final=True)
                return state
            if state is not None and state.name == "PENDING" and state.reason in NEVER_STARTS:
                setting = NEVER_STARTS[state.reason]
                raise InputError(
                    setting,
                    f"SLURM job {job_id} can never start ({state.reason}): change {setting}",
                )
        time.sleep(0.5)
