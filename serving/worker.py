"""Runs trainings from the queue one at a time, each as a `train.py` process in its own group.

The trainer writes straight into the job's log file (so its log survives the server), and
runs in a new session so that cancel, shutdown and crash recovery can stop it and all its
children with one `killpg`.

A worker holds its job by heartbeats in the database. A job whose worker died (the server
killed, the machine lost) is claimed again, here after a restart or by another worker
sharing the queue, and resumed: the trainer is run again into the same output dir, where it
continues from its last checkpoint (its log says which). Cancels reach the job's worker
through the database too, so they work from any server of the queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from musicgen_ft.children import die_with_parent
from musicgen_ft.constants import TAR_NAME, user_name
from musicgen_ft.inputs import TrainInputs
from serving import jobfiles
from serving.config import REPO_ROOT, ServerConfig
from serving.ids import new_version_id
from serving.store import Store, TrainingRow

log = logging.getLogger(__name__)

Emit = Callable[[str, str], None]
POLL_S = 0.25


def trainer_argv(prefix: tuple[str, ...], inputs: TrainInputs, out_dir: Path) -> list[str]:
    """The trainer's command line: `prefix`, the output dir, then every input as `--name=v`.

    The `--name=value` form keeps a value that starts with `-` a value, never an option.
    """
    argv = [*prefix, f"--output_dir={out_dir}"]
    for name, value in inputs.to_dict().items():
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        argv.append(f"--{name}={text}")
    return argv


def trainer_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # log lines in the order they were printed
    env["USER"] = user_name()  # AudioCraft's config interpolates ${oc.env:USER}
    return env


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def is_our_trainer(pid: int, out_dir: Path) -> bool:
    """Whether `pid` still runs the trainer of this job (guards against reused pids)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"--output_dir={out_dir}".encode() in cmdline


def failure_message(returncode: int, logs: str) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return f"The trainer was killed by {name} (out of memory, or stopped from outside)."
    return jobfiles.last_line(logs) or f"The trainer exited with code {returncode}."


def dead_worker_here(worker_id: str | None) -> bool:
    """Whether `worker_id` names a worker process of this machine that no longer runs."""
    if worker_id is None:
        return True  # released, or from before heartbeats
    host, _, rest = worker_id.partition(":")
    pid = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    return not Path(f"/proc/{pid}").exists()


@dataclass
class _Running:
    id: str
    proc: subprocess.Popen[bytes] | None = None
    cancel_at: float | None = None
    lost: bool = False  # another worker holds the job now


class Worker:
    """One thread that claims the oldest queued (or orphaned) training and runs it to its end."""

    def __init__(self, store: Store, config: ServerConfig, emit: Emit) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._store = store
        self._config = config
        self._emit = emit
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._thread = threading.Thread(target=self._loop, name="trainer-worker", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------

    def recover(self) -> None:
        """After a crash of a worker on this machine: stop what its trainers left running and
        give their trainings back to the queue, to be resumed now rather than once their
        heartbeats go stale. Queued trainings stay queued."""
        for row in self._store.trainings_with_status("processing"):
            if not dead_worker_here(row.worker_id):
                continue  # alive, or on another machine: its heartbeats decide
            self._stop_leftover(row)
            if self._store.release(row.id, row.worker_id):
                jobfiles.note(
                    self._config.data_dir,
                    row.id,
                    "the server stopped while this training was running; it will resume "
                    "from its last checkpoint",
                )

    def _stop_leftover(self, row: TrainingRow) -> None:
        """Kill the trainer a dead worker of this machine left behind, if it still runs."""
        out_dir = jobfiles.output_dir(self._config.data_dir, row.id)
        if row.pid is not None and is_our_trainer(row.pid, out_dir):
            kill_group(row.pid)

    def start(self) -> None:
        self._thread.start()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop taking jobs; a running trainer is killed and its training goes back to the
        queue, to resume from its last checkpoint when a worker runs again."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            running = self._running
        if running is not None and running.proc is not None:
            kill_group(running.proc.pid)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def cancel(self, training_id: str) -> None:
        """Stop the trainer of `training_id` if it is the one running: SIGTERM, then SIGKILL
        after the grace period. The caller has already marked the training canceled."""
        with self._lock:
            running = self._running
            if running is None or running.id != training_id:
                return
            running.cancel_at = time.monotonic()
            proc = running.proc
        jobfiles.note(self._config.data_dir, training_id, "canceled by an API request")
        if proc is not None:
            kill_group(proc.pid, signal.SIGTERM)

    # --- the loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                row = self._store.claim(self.worker_id, stale_s=self._config.stale_s)
            except Exception:  # the database is unreachable for now: keep trying
                log.exception("worker %s could not reach the queue", self.worker_id)
                row = None
            if row is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self._run(row)
            except Exception as exc:  # keep serving; the job itself ends failed
                log.exception("training %s crashed the worker", row.id)
                if self._store.finish(row.id, "failed", error=f"internal error: {exc}"):
                    self._emit(row.id, "completed")

    def _run(self, row: TrainingRow) -> None:
        if row.attempts > self._config.max_attempts:
            message = (
                f"The training was started {row.attempts - 1} times and its worker stopped "
                "each time (server or machine restarts); it is not resumed again. Its logs "
                "and checkpoints are kept; start a new training to retry."
            )
            jobfiles.note(self._config.data_dir, row.id, message)
            if self._store.finish(row.id, "failed", error=message):
                self._emit(row.id, "completed")
            return
        if row.attempts > 1:
            self._stop_leftover(row)
        # Registered before the trainer starts, so that a cancel from now on finds the job.
        with self._lock:
            running = self._running = _Running(row.id)
        try:
            self._start(row, running)
        finally:
            with self._lock:
                self._running = None

    def _start(self, row: TrainingRow, running: _Running) -> None:
        data_dir = self._config.data_dir
        out_dir = jobfiles.output_dir(data_dir, row.id)
        out_dir.mkdir(parents=True, exist_ok=True)
        inputs = TrainInputs.from_dict(
            {**row.input, "allow_private_urls": self._config.allow_private_urls}
        )
        argv = trainer_argv(self._config.trainer_command, inputs, out_dir)
        if row.attempts > 1:
            start = f"training {row.id} resumed by {self.worker_id} (start {row.attempts})"
        else:
            start = f"training {row.id} started by {self.worker_id} (engine {row.version[:12]})"
        jobfiles.note(data_dir, row.id, start)
        self._emit(row.id, "logs")
        with jobfiles.log_path(data_dir, row.id).open("ab") as log_file:
            proc = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=trainer_env(),
                start_new_session=True,
                preexec_fn=die_with_parent,  # a trainer never outlives its worker
            )
        self._store.set_pid(row.id, proc.pid)
        with self._lock:
            running.proc = proc
            canceled = running.cancel_at is not None
        if canceled:
            kill_group(proc.pid, signal.SIGTERM)
        try:
            returncode = self._watch(running, proc)
        finally:
            kill_group(proc.pid)  # nothing of the job outlives it
        if running.lost:
            jobfiles.note(
                data_dir, row.id, f"{self.worker_id} lost this training to another worker"
            )
            return
        self._finish(row, returncode, out_dir)

    def _watch(self, running: _Running, proc: subprocess.Popen[bytes]) -> int:
        path = jobfiles.log_path(self._config.data_dir, running.id)
        size = -1
        beat_at = time.monotonic()
        while True:
            try:
                returncode: int | None = proc.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                returncode = None
            new_size = path.stat().st_size if path.exists() else 0
            if new_size != size:
                size = new_size
                self._emit(running.id, "logs")
            if returncode is not None:
                return returncode
            if time.monotonic() - beat_at >= self._config.heartbeat_s:
                beat_at = time.monotonic()
                self._beat(running, proc)
            with self._lock:
                cancel_at = running.cancel_at
            if cancel_at is not None and time.monotonic() - cancel_at > self._config.cancel_grace_s:
                kill_group(proc.pid)

    def _beat(self, running: _Running, proc: subprocess.Popen[bytes]) -> None:
        """Renew the hold on the job; stop the trainer if the job was canceled (from any
        server of the queue) or is no longer ours."""
        try:
            status = self._store.heartbeat(running.id, self.worker_id)
        except Exception:  # the database blinked: the next beat retries
            log.exception("heartbeat of %s failed", running.id)
            return
        if status == "processing":
            return
        if status is None:
            running.lost = True
            kill_group(proc.pid)
        elif running.cancel_at is None:
            self.cancel(running.id)

    def _finish(self, row: TrainingRow, returncode: int, out_dir: Path) -> None:
        data_dir = self._config.data_dir
        if self._stop.is_set() and returncode != 0:
            if self._store.release(row.id, self.worker_id):
                jobfiles.note(
                    data_dir,
                    row.id,
                    "the server was shut down while this training was running; it will "
                    "resume from its last checkpoint when a worker runs again",
                )
            return
        logs = jobfiles.read_logs(data_dir, row.id)
        weights = out_dir / TAR_NAME
        if returncode == 0 and not weights.is_file():
            returncode, logs = 1, f"The trainer exited without writing {weights.name}."
        if returncode != 0:
            if self._store.finish(row.id, "failed", error=failure_message(returncode, logs)):
                self._emit(row.id, "completed")
            return
        owner, name = row.destination.split("/", 1)
        training = self._store.training(row.id)
        if training is None or training.status != "processing":
            return  # canceled as it finished: no version
        version = self._store.add_version(
            id=new_version_id(),
            token_id=row.token_id,
            owner=owner,
            name=name,
            training_id=row.id,
            weights=weights,
        )
        jobfiles.note(data_dir, row.id, f"new version {row.destination}:{version.id}")
        if self._store.finish(row.id, "succeeded", output_version=version.id):
            self._emit(row.id, "completed")
