"""Helpers of the serving tests (no tests here): a live `musicgen-ft serve`, a fake trainer,
a static file server and a webhook receiver, all on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TOKEN = "test-token-a"
OTHER_TOKEN = "test-token-b"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Server:
    """`musicgen-ft serve` as a child process, the way an operator starts it."""

    def __init__(
        self,
        tmp: Path,
        *,
        db: Path | str | None = None,
        data_dir: Path | None = None,
        extra: list[str] | None = None,
        allow_private: bool = True,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db or tmp / "serve.db"
        self.data_dir = data_dir or tmp / "data"
        self.log = tmp / f"server-{self.port}.log"
        self.argv = [
            str(VENV_BIN / "musicgen-ft"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--data_dir",
            str(self.data_dir),
            "--token",
            TOKEN,
            "--token",
            OTHER_TOKEN,
            *(extra or []),
        ]
        if allow_private:
            self.argv.append("--allow_private_urls")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        env = {**os.environ, "USER": os.environ.get("USER") or "root"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=REPO, stdout=log, stderr=log, env=env)
        wait_until(self._ready, 60, f"the server on {self.url} (log: {self.log})", every=0.2)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited: {self.log.read_text()[-3000:]}")
        try:
            r = httpx.get(f"{self.url}/v1/models", headers=auth(TOKEN), timeout=2)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client(server: Server, token: str = TOKEN) -> Any:
    """The official client, unchanged, pointed at our server with its base-URL setting."""
    import replicate

    return replicate.Client(api_token=token, base_url=server.url)


FAKE_TRAINER = textwrap.dedent(
    '''
    """A stand-in for train.py: behaviour picked by the dataset URL's file name."""
    import argparse, os, sys, time, tarfile, io
    p = argparse.ArgumentParser()
    p.add_argument("--output_dir", required=True)
    args, rest = p.parse_known_args()
    flags = dict(arg.split("=", 1) for arg in rest)  # the server passes --name=value
    name = flags["--dataset_path"].rsplit("/", 1)[-1]
    print("[fetch] " + flags["--dataset_path"], flush=True)
    print("argv " + " ".join(sys.argv[1:]), flush=True)
    if name.startswith("fail"):
        print("[prepare] reading the archive", flush=True)
        print("error: the dataset holds no audio files", file=sys.stderr, flush=True)
        sys.exit(1)
    if name.startswith("slow"):
        for step in range(600):
            print(f"[train] step {step} loss 1.0 rate 2.0 it/s", flush=True)
            time.sleep(0.1)
    if name.startswith("nooutput"):
        sys.exit(0)
    if name.startswith("resumable"):  # checkpoints each step, resumes from it when re-run
        ckpt = os.path.join(args.output_dir, "fake_checkpoint")
        done = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
        if done:
            print(f"resuming from the checkpoint {ckpt} (saved after step {done})", flush=True)
        for step in range(done, 40):
            print(f"[train] step {step + 1}/40 pid {os.getpid()}", flush=True)
            time.sleep(0.25)
            with open(ckpt + ".tmp", "w") as f:
                f.write(str(step + 1))
            os.replace(ckpt + ".tmp", ckpt)
    steps = 3
    for step in range(steps):
        print(f"[train] step {step + 1}/{steps} loss {1.0 / (step + 1):.3f}", flush=True)
        time.sleep(0.2)
    out = os.path.join(args.output_dir, "trained_model.tar")
    with tarfile.open(out, "w") as tar:
        data = b"fake weights"
        info = tarfile.TarInfo("state_dict.bin"); info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    print("[export] done", flush=True)
    print(out, flush=True)
    '''
)


def write_fake_trainer(tmp: Path) -> Path:
    path = tmp / "fake_train.py"
    path.write_text(FAKE_TRAINER)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class FileServer:
    """Serves a folder over plain HTTP on 127.0.0.1 (the dataset host of a test)."""

    def __init__(self, root: Path) -> None:
        handler = lambda *a, **k: _QuietHandler(*a, directory=str(root), **k)  # noqa: E731
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Delivery:
    headers: dict[str, str]
    body: str
    status: int
    at: float

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class WebhookReceiver:
    """Records every POST; answers the statuses in `answers` first, then 200. The first
    `terminal_failures` deliveries of a terminal status are answered 500."""

    answers: list[int] = field(default_factory=list)
    terminal_failures: int = 0
    deliveries: list[Delivery] = field(default_factory=list)

    def _status_for(self, body: str) -> int:
        if self.answers:
            return self.answers.pop(0)
        terminal = json.loads(body).get("status") in ("succeeded", "failed", "canceled")
        if terminal and self.terminal_failures > 0:
            self.terminal_failures -= 1
            return 500
        return 200

    def __post_init__(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                status = receiver._status_for(body)
                receiver.deliveries.append(
                    Delivery(
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        status,
                        time.monotonic(),
                    )
                )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def make_dataset(folder: Path, seconds: float = 12.0) -> Path:
    """A zip of two synthetic music clips (numpy, no real music)."""
    import soundfile as sf
    from audio_fixtures import music

    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / "songs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for seed in (1, 2):
            wav = folder / f"song{seed}.wav"
            sf.write(wav, music(seconds, seed=seed), 44100)
            zf.write(wav, wav.name)
            wav.unlink()
    return archive


def processes_of_group(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields_ = stat.rsplit(")", 1)[1].split()
        state, pgrp = fields_[0], int(fields_[2])
        if pgrp == pgid and state != "Z":
            found.append(int(entry.name))
    return found


def trainer_pids(output_dir: Path) -> list[int]:
    """Processes whose command line names this job's output dir (the trainer)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"--output_dir={output_dir}".encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def training_pgid(data_dir: Path, training_id: str) -> int:
    out = data_dir / "trainings" / training_id / "output"
    pids = wait_until(lambda: trainer_pids(out), 30, f"the trainer of {training_id}")
    return os.getpgid(pids[0])


def iter_pages(list_method: Callable[[Any], Any]) -> Iterator[Any]:
    cursor: Any = ...
    while cursor is not None:
        page = list_method(cursor)
        yield page
        cursor = page.next


def debug_input(dataset_url: str, **extra: Any) -> dict[str, Any]:
    """Fewest updates the pipeline accepts; no Essentia/Demucs models are needed."""
    return {
        "dataset_path": dataset_url,
        "model_version": "debug",
        "auto_labeling": False,
        "drop_vocals": False,
        "one_same_description": "synthetic test music",
        "epochs": 1,
        "updates_per_epoch": 2,
        "batch_size": 2,
        "sample_prompts": 1,
        "sample_duration": 1,
        **extra,
    }


def claim_in_parallel(location: str | Path, workers: int = 4) -> dict[str, list[str]]:
    """Workers, each with its own engine (as separate processes would have), claiming from
    the queue at `location` until it is empty; the training ids each one got."""
    from serving.store import Store

    got: dict[str, list[str]] = {f"w{n}": [] for n in range(workers)}

    def work(worker: str) -> None:
        own = Store(location)
        while (row := own.claim(worker, stale_s=30)) is not None:
            got[worker].append(row.id)
        own.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got
