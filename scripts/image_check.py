"""The image's promises, checked from the inside (`make image-test` runs this in the container,
as the image's user, with no network but loopback):

- a non-root user, /src holding train.py and predict.py, `musicgen-ft` on PATH, no token in the
  environment, no weights anywhere, nothing writable outside /data but the temp dirs;
- Cog's entry points imported exactly as cog.yaml names them;
- a `debug` fine-tune of the bundled example (python train.py), a clip from it (python
  predict.py), `musicgen-ft serve` answering GET /v1/models with a token and 401 without;
- Cog's own HTTP server (the `cog` package, coglet) running one training and one prediction.

Prints one line per check (a failure with its reason) and exits 1 when any failed.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import importlib.util
import inspect
import io
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SRC = Path("/src")
DATA = Path("/data")
WORK = DATA / "image-check"
# World-writable (sticky) temp dirs of a Debian system; /data is the one volume.
TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")
NOT_FILES = ("/proc", "/sys", "/dev", "/mnt")
WEIGHT_SUFFIXES = {".th", ".pt", ".pth", ".ckpt", ".safetensors", ".bin", ".onnx", ".pb", ".h5"}
PROMPT = "warm ambient pad in C major"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


class CheckFailed(Exception):
    pass


def ensure(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def run(cmd: list[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> None:
    with log.open("wb") as out:
        try:
            proc = subprocess.run(
                cmd,
                cwd=SRC,
                env={**os.environ, **OFFLINE, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"{cmd[1]} ran past {timeout:.0f} s (log: {log})") from None
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        raise CheckFailed(f"`{' '.join(cmd)}` exited {proc.returncode}:\n" + "\n".join(tail))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(
    method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=900) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        payload = e.read()
        try:
            return e.code, json.loads(payload or b"{}")
        except ValueError:
            return e.code, {"raw": payload.decode(errors="replace")}


@contextlib.contextmanager
def server(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=SRC,
            env={**os.environ, **OFFLINE, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(10)


def wait_for(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path
) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise CheckFailed(f"{what} exited {proc.returncode}:\n{tail}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise CheckFailed(f"{what} not ready after 300 s (log: {log})")


def data_uri_bytes(uri: object) -> bytes:
    ensure(isinstance(uri, str) and uri.startswith("data:"), f"not a data: URI: {uri!r:.80}")
    assert isinstance(uri, str)
    return base64.b64decode(uri.split(",", 1)[1])


def is_wav(audio: bytes) -> bool:
    return audio[:4] == b"RIFF" and audio[8:12] == b"WAVE" and len(audio) > 10_000


# --- checks --------------------------------------------------------------------------------


def check_layout() -> str:
    user = pwd.getpwuid(os.getuid()).pw_name
    ensure(os.getuid() != 0, "runs as root")
    ensure(Path.cwd() == SRC, f"working dir is {Path.cwd()}, not {SRC}")
    for name in ("train.py", "predict.py", "cog.yaml"):
        ensure((SRC / name).is_file(), f"{SRC / name} is missing")
    ensure(shutil.which("musicgen-ft"), "musicgen-ft is not on PATH")
    secret_env = [k for k in os.environ if any(w in k for w in ("TOKEN", "SECRET", "PASSWORD"))]
    ensure(not secret_env, f"secrets in the environment: {secret_env}")
    ensure(DATA.is_dir() and not any(DATA.iterdir()), f"{DATA} is not empty in the image")
    writable, weights = [], []
    for top, dirs, files in os.walk("/"):
        if top in NOT_FILES or top == str(DATA) or top in TEMP_DIRS:
            dirs[:] = []
            continue
        if os.access(top, os.W_OK):
            writable.append(top)
        for f in files:
            path = os.path.join(top, f)
            if os.path.splitext(f)[1] in WEIGHT_SUFFIXES and not os.path.islink(path):
                with contextlib.suppress(OSError):
                    if os.path.getsize(path) > 1_000_000:
                        weights.append(path)
    ensure(not writable, f"writable by {user} outside {DATA}: {writable[:10]}")
    ensure(not weights, f"weight-like files in the image: {weights[:10]}")
    return f"user {user}, writable: {DATA} and the temp dirs; no weights, no token"


def check_cog_entry_points() -> str:
    import cog
    import yaml

    config = yaml.safe_load((SRC / "cog.yaml").read_text())
    found = []
    for key, base in (("predict", cog.BasePredictor), ("train", None)):
        ref = config.get(key)
        ensure(isinstance(ref, str) and ref.count(":") == 1, f"cog.yaml {key}: {ref!r}")
        file, name = ref.split(":")
        spec = importlib.util.spec_from_file_location(Path(file).stem, SRC / file)
        ensure(spec and spec.loader, f"cannot load {file}")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        obj = getattr(module, name, None)
        ensure(obj is not None, f"{file} has no {name}")
        if base is not None:
            ensure(isinstance(obj, type) and issubclass(obj, base), f"{ref} is no {base}")
        else:
            ensure(callable(obj), f"{ref} is not callable")
            assert callable(obj)
            out = inspect.signature(obj).return_annotation
            if isinstance(out, str):
                out = eval(out, vars(module))  # the annotation of a trusted file
            ensure(
                isinstance(out, type)
                and issubclass(out, cog.BaseModel)
                and "weights" in getattr(out, "__annotations__", {}),
                f"{ref} does not return a cog.BaseModel with weights",
            )
        found.append(ref)
    return ", ".join(found)


def fine_tune() -> str:
    dataset = WORK / "example_dataset.zip"
    run(
        [sys.executable, "examples/make_example_dataset.py", str(dataset)],
        WORK / "dataset.log",
        300,
    )
    run_dir = WORK / "run"
    # The demo's settings (scripts/demo.py), fewer updates: no Demucs weights offline.
    run(
        [
            sys.executable,
            "train.py",
            f"--dataset_path={dataset}",
            "--model_version=debug",
            "--drop_vocals=false",
            "--epochs=1",
            "--updates_per_epoch=3",
            "--batch_size=2",
            "--sample_prompts=1",
            "--sample_duration=1",
            f"--output_dir={run_dir}",
        ],
        WORK / "train.log",
        1200,
    )
    tar_path = run_dir / "trained_model.tar"
    ensure(tar_path.is_file(), f"no {tar_path}")
    with tarfile.open(tar_path) as tar:
        ensure("state_dict.bin" in tar.getnames(), f"{tar_path} has no state_dict.bin")
    return f"{tar_path} ({tar_path.stat().st_size / 1e6:.1f} MB)"


def generate_clip() -> str:
    import soundfile as sf

    weights = WORK / "run" / "trained_model.tar"
    ensure(weights.is_file(), f"no {weights} to generate from (the fine-tune failed)")
    clip = WORK / "clip.wav"
    run(
        [
            sys.executable,
            "predict.py",
            f"--weights={weights}",
            f"--prompt={PROMPT}",
            "--duration=2",
            "--seed=0",
            f"--output={clip}",
        ],
        WORK / "predict.log",
        600,
    )
    ensure(clip.is_file(), f"no {clip}")
    info = sf.info(str(clip))
    ensure(abs(info.duration - 2.0) < 0.25, f"{clip} lasts {info.duration:.2f} s, not 2 s")
    return f"{clip} ({info.duration:.1f} s, {info.samplerate} Hz)"


def serve_api() -> str:
    token, port = secrets.token_urlsafe(16), free_port()
    url = f"http://127.0.0.1:{port}/v1/models"
    log = WORK / "serve.log"
    cmd = ["musicgen-ft", "serve", "--host=127.0.0.1", f"--port={port}"]
    cmd += [f"--db={WORK / 'serve.db'}", f"--data_dir={WORK / 'jobs'}"]
    with server(cmd, {"MUSICGEN_FT_TOKENS": token}, log) as proc:
        wait_for(lambda: call("GET", url, token=token)[0] == 200, proc, "musicgen-ft serve", log)
        status, body = call("GET", url, token=token)
        ensure(status == 200 and "results" in body, f"GET /v1/models with the token: {status}")
        for wrong in (None, token + "x"):
            status, _ = call("GET", url, token=wrong)
            ensure(status == 401, f"GET /v1/models with token {wrong!r}: {status}, not 401")
    return "GET /v1/models: 200 with the token, 401 without and with a wrong one"


def quiet_files(folder: Path) -> Callable[..., http.server.BaseHTTPRequestHandler]:
    """A request handler serving `folder` without a log line per request."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def cog_server(mode: str, env: dict[str, str]) -> tuple[str, list[str], dict[str, str], Path]:
    """URL, command, environment and log of `python -m cog.server.http` in `mode`."""
    port = free_port()
    cmd = [sys.executable, "-m", "cog.server.http", "--host=127.0.0.1", f"--x-mode={mode}"]
    return f"http://127.0.0.1:{port}", cmd, {"PORT": str(port), **env}, WORK / f"cog-{mode}.log"


def wait_cog_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    def ready() -> bool:
        status = call("GET", f"{url}/health-check")[1].get("status")
        ensure(status not in ("SETUP_FAILED", "DEFUNCT"), f"Cog's setup failed ({log})")
        return status == "READY"

    wait_for(ready, proc, "Cog's server", log)


def cog_train_and_predict() -> str:
    import yaml

    config = yaml.safe_load((SRC / "cog.yaml").read_text())
    folder = WORK / "cog-dataset"
    run(
        [sys.executable, "examples/make_example_dataset.py", f"{folder}/songs.zip", "--seconds=12"],
        WORK / "cog-dataset.log",
        300,
    )
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), quiet_files(folder))
    threading.Thread(target=files.serve_forever, daemon=True).start()
    dataset_url = f"http://127.0.0.1:{files.server_address[1]}/songs.zip"
    try:
        url, cmd, env, log = cog_server("train", {"COG_TRAIN_TYPE_STUB": config["train"]})
        with server(cmd, env, log) as proc:
            wait_cog_ready(url, proc, log)
            body = {
                "input": {
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
                }
            }
            status, result = call("POST", f"{url}/trainings", body)
    finally:
        files.shutdown()
        files.server_close()
    ensure(status == 200, f"POST /trainings: {status} {result}")
    ensure(result.get("status") == "succeeded", f"training {result.get('status')}: {result}")
    weights = data_uri_bytes((result.get("output") or {}).get("weights"))
    with tarfile.open(fileobj=io.BytesIO(weights)) as tar:
        ensure("state_dict.bin" in tar.getnames(), "Cog's training output has no state_dict.bin")
    tar_path = WORK / "cog-trained_model.tar"
    tar_path.write_bytes(weights)

    stub = config["predict"]
    url, cmd, env, log = cog_server(
        "predict", {"COG_PREDICT_TYPE_STUB": stub, "COG_WEIGHTS": str(tar_path)}
    )
    body = {
        "input": {
            "prompt": PROMPT,
            "duration": 1.0,
            "seed": 3,
            "normalization_strategy": "peak",
            "output_format": "wav",
        }
    }
    with server(cmd, env, log) as proc:
        wait_cog_ready(url, proc, log)
        status, result = call("POST", f"{url}/predictions", body)
    ensure(status == 200, f"POST /predictions: {status} {result}")
    ensure(result.get("status") == "succeeded", f"prediction {result.get('status')}: {result}")
    ensure(is_wav(data_uri_bytes(result.get("output"))), "the prediction is not a wav")
    return f"POST /trainings ({config['train']}) then POST /predictions ({stub}): succeeded"


CHECKS: list[tuple[str, Callable[[], str]]] = [
    ("image layout", check_layout),
    ("Cog entry points as cog.yaml names them", check_cog_entry_points),
    ("debug fine-tune of the bundled example (train.py)", fine_tune),
    ("a generated clip (predict.py)", generate_clip),
    ("musicgen-ft serve", serve_api),
    ("Cog's HTTP server", cog_train_and_predict),
]


def main() -> int:
    failed = []
    for name, check in CHECKS:
        start = time.monotonic()
        try:
            if check is not check_layout:
                WORK.mkdir(parents=True, exist_ok=True)
            detail = check()
        except CheckFailed as exc:
            print(f"FAIL  {name}: {exc}", flush=True)
            failed.append(name)
            continue
        print(f"ok    {name} ({time.monotonic() - start:.0f} s): {detail}", flush=True)
    if failed:
        print(f"{len(failed)} of {len(CHECKS)} checks failed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
