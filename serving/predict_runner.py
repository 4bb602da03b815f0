"""Runs predictions from the queue in the server's predictor process, one at a time.

One thread claims the oldest queued prediction, hands it to the predictor (`serving.predictor`,
started on the first prediction and kept, so its loaded models stay warm) and waits for its
answer, renewing its hold on the prediction and passing cancels on. The predictor is started
from this thread with the parent-death signal, so it never outlives the server.

Sharing the GPU with trainings: the predictor is a process of its own beside the trainer, on
`--predict_device` (by default the GPU trainings use). The two share the device the way CUDA
shares it between processes (time-sliced, each with its own memory); neither waits for the
other, so a prediction of a few seconds runs while a training of hours goes on. The predictor
holds at most `--predict_models` models and unloads them after `--predict_idle_s` without a
prediction, so an idle predictor gives its memory back; on running out of GPU memory it
unloads its other models and tries once more, then fails the prediction with that reason. A
server whose trainings need the whole GPU runs predictions elsewhere: `--predict_device cpu`
or `cuda:1`.

A server that stops (or dies) while a prediction runs leaves it to be run again from the start
when a runner claims it (after a restart at once; otherwise once its heartbeats are stale).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from musicgen_ft.children import die_with_parent
from musicgen_ft.errors import FineTuneError
from musicgen_ft.net import download
from serving import predictions as pfiles
from serving.config import REPO_ROOT, ServerConfig
from serving.predictions import PredictionRow, PredictionStore
from serving.worker import dead_worker_here, trainer_env

log = logging.getLogger(__name__)

Emit = Callable[[str, str], None]
POLL_S = 0.25
MAX_INPUT_AUDIO_BYTES = 200 * 1000**2
MAX_ATTEMPTS = 3


class PredictorDiedError(Exception):
    pass


def note(path: Path, message: str) -> None:
    """A line from the server in a prediction's log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(f"[serve {time.strftime('%H:%M:%S')}] {message}\n")


class PredictorProcess:
    """The `serving.predictor` child and its replies (read by a thread into a queue)."""

    def __init__(self, argv: list[str], log_file: Path) -> None:
        self._argv = argv
        self._log_file = log_file
        self._proc: subprocess.Popen[str] | None = None
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def ensure(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        with self._log_file.open("a") as err:
            self._proc = subprocess.Popen(
                self._argv,
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=trainer_env(),
                text=True,
                start_new_session=True,
                preexec_fn=die_with_parent,  # it never outlives the server
            )
        self._replies = queue.Queue()
        threading.Thread(
            target=self._read, args=(self._proc.stdout, self._replies), daemon=True
        ).start()

    @staticmethod
    def _read(stream: IO[str], into: queue.Queue[dict[str, Any] | None]) -> None:
        for line in stream:
            with contextlib.suppress(ValueError):
                into.put(json.loads(line))
        into.put(None)

    def send(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise PredictorDiedError("the predictor is not running")
        try:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise PredictorDiedError(str(exc)) from None

    def reply(self, timeout: float) -> dict[str, Any] | None:
        """The next reply; None when none came within `timeout`.

        Raises:
            PredictorDiedError: the predictor exited (its exit says how).
        """
        try:
            found = self._replies.get(timeout=timeout)
        except queue.Empty:
            return None
        if found is None:
            assert self._proc is not None
            code = self._proc.wait()
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            raise PredictorDiedError(
                f"the predictor process stopped ({how}; out of memory?); see {self._log_file}"
            )
        return found

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()


@dataclass
class _Running:
    id: str
    cancel_at: float | None = None


class PredictionRunner:
    """The thread that takes predictions from the queue and runs them in the predictor."""

    def __init__(self, store: PredictionStore, config: ServerConfig, emit: Emit) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._store = store
        self._config = config
        self._emit = emit
        argv = [
            sys.executable,
            "-m",
            "serving.predictor",
            f"--device={config.predict_device}",
            f"--models={config.predict_models}",
            f"--idle_s={config.predict_idle_s}",
        ]
        self._predictor = PredictorProcess(argv, config.data_dir / "predictor.log")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._done = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="predictor", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------

    def recover(self) -> None:
        """Give predictions a dead server of this machine was running back to the queue."""
        for row in self._store.running():
            held = row.worker_id
            if held is not None and dead_worker_here(held) and self._store.release(row.id, held):
                self._note(row.id, "the server stopped during this prediction; run again")

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._predictor.kill()

    def cancel(self, id: str) -> None:
        """Stop prediction `id` if it is the one running (the caller marked it canceled)."""
        with self._lock:
            if self._running is not None and self._running.id == id:
                self._running.cancel_at = time.monotonic()
        self._wake.set()

    def wait(self, id: str, timeout: float) -> None:
        """Block until prediction `id` ends (finished here: at once; elsewhere: polled)."""
        deadline = time.monotonic() + timeout
        with self._done:
            while (left := deadline - time.monotonic()) > 0:
                row = self._store.get(id)
                if row is None or row.status not in ("starting", "processing"):
                    return
                self._done.wait(min(left, 0.5))

    # --- the loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                row = self._store.claim(self.worker_id, stale_s=self._config.stale_s)
            except Exception:  # the database is unreachable for now: keep trying
                log.exception("predictor %s could not reach the queue", self.worker_id)
                row = None
            if row is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            with self._lock:
                self._running = _Running(row.id)
            try:
                self._run(row)
            except Exception as exc:  # keep serving; the prediction itself ends failed
                log.exception("prediction %s crashed the runner", row.id)
                self._end(row.id, "failed", error=f"internal error: {exc}")
            finally:
                with self._lock:
                    self._running = None

    def _note(self, id: str, message: str) -> None:
        note(pfiles.log_path(self._config.data_dir, id), message)

    def _end(self, id: str, status: str, **fields: str | None) -> None:
        if self._store.finish(id, status, **fields):
            self._emit(id, "completed")
        with self._done:
            self._done.notify_all()

    def _run(self, row: PredictionRow) -> None:
        if row.attempts > MAX_ATTEMPTS:
            message = (
                f"The prediction was started {row.attempts - 1} times and the server stopped "
                "each time; it is not run again."
            )
            self._note(row.id, message)
            self._end(row.id, "failed", error=message)
            return
        again = " again" if row.attempts > 1 else ""
        self._note(row.id, f"prediction {row.id} started{again} by {self.worker_id}")
        self._emit(row.id, "logs")
        try:
            params = self._fetch_inputs(row)
        except FineTuneError as exc:
            self._end(row.id, "failed", error=str(exc))
            return
        self._predictor.ensure()
        folder = pfiles.job_dir(self._config.data_dir, row.id)
        self._predictor.send(
            {
                "op": "predict",
                "id": row.id,
                "key": row.version,
                "weights": row.weights_path,
                "variant": row.variant,
                "params": params,
                "out_dir": str(folder),
                "log": str(pfiles.log_path(self._config.data_dir, row.id)),
            }
        )
        try:
            reply = self._watch(row)
        except PredictorDiedError as exc:
            self._predictor.kill()
            if self._stop.is_set():
                self._store.release(row.id, self.worker_id)
            else:
                self._note(row.id, str(exc))
                self._end(row.id, "failed", error=str(exc))
            return
        if reply is None:  # lost to another runner, or shutting down
            return
        event = reply.get("event")
        if event == "succeeded":
            self._end(row.id, "succeeded", output=str(reply["output"]))
        elif event == "failed":
            self._end(row.id, "failed", error=str(reply.get("error") or "failed"))
        else:
            self._end(row.id, "canceled")

    def _fetch_inputs(self, row: PredictionRow) -> dict[str, Any]:
        """The params with an input_audio URL (not one of this server's files, which were
        resolved at create time) fetched into the prediction's folder."""
        params = dict(row.params)
        source = params.get("input_audio")
        if isinstance(source, str) and "://" in source:
            name = source.rsplit("/", 1)[-1].split("?")[0][-100:] or "audio"
            target = pfiles.job_dir(self._config.data_dir, row.id) / "input" / name
            self._note(row.id, "fetching input_audio")
            params["input_audio"] = str(
                download(
                    source,
                    target,
                    max_bytes=MAX_INPUT_AUDIO_BYTES,
                    allow_private=self._config.allow_private_urls,
                    field="input_audio",
                )
            )
        return params

    def _watch(self, row: PredictionRow) -> dict[str, Any] | None:
        """Wait for the predictor's answer; renew the hold, pass a cancel on."""
        path = pfiles.log_path(self._config.data_dir, row.id)
        size = -1
        beat_at = time.monotonic()
        sent_cancel = False
        while True:
            reply = self._predictor.reply(POLL_S)
            new_size = path.stat().st_size if path.exists() else 0
            if new_size != size:
                size = new_size
                self._emit(row.id, "logs")
            if reply is not None and reply.get("id") == row.id:
                return reply
            if self._stop.is_set():
                self._predictor.kill()
                self._store.release(row.id, self.worker_id)
                return None
            if time.monotonic() - beat_at >= self._config.heartbeat_s:
                beat_at = time.monotonic()
                status = self._store.heartbeat(row.id, self.worker_id)
                if status is None:  # another runner took it over
                    self._predictor.kill()
                    return None
                if status == "canceled":
                    self.cancel(row.id)
            with self._lock:
                cancel_at = self._running.cancel_at if self._running else None
            if cancel_at is not None and not sent_cancel:
                sent_cancel = True
                self._predictor.send({"op": "cancel", "id": row.id})
            if cancel_at is not None and time.monotonic() - cancel_at > self._config.cancel_grace_s:
                self._predictor.kill()  # stuck outside the LM loop: the next one restarts it
                return {"event": "canceled"}
