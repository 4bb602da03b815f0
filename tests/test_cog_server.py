"""Cog's own HTTP server (from the `cog` package) serving our `train.py` and `predict.py`:
a training through POST /trainings, then a prediction through POST /predictions that loads
the trained weights in `setup(weights)` (what `cog train` / `cog predict` and Replicate do)."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_support import (
    REPO,
    VENV_BIN,
    FileServer,
    debug_input,
    free_port,
    make_dataset,
    wait_until,
)

pytestmark = pytest.mark.slow


class CogServer:
    """`python -m cog.server.http` with the env `cog build` would bake into the image."""

    def __init__(self, tmp: Path, mode: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"cog-{mode}.log"
        # coglet starts its worker with the `python` on PATH: put this venv's first.
        full_env = {
            **os.environ,
            "PORT": str(self.port),
            "USER": os.environ.get("USER") or "root",
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            **env,
        }
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1", "--x-mode", mode],
                cwd=REPO,
                env=full_env,
                stdout=log,
                stderr=log,
            )
        try:
            wait_until(self._ready, 180, f"cog's server ({self.log})", every=0.5)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"cog's server exited: {self.log.read_text()[-3000:]}")
        try:
            r = httpx.get(f"{self.url}/health-check", timeout=2)
        except httpx.HTTPError:
            return False
        status = r.json().get("status")
        if status in ("SETUP_FAILED", "DEFUNCT"):
            raise AssertionError(f"setup failed: {r.text}\n{self.log.read_text()[-3000:]}")
        return bool(status == "READY")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def dataset_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("cog-dataset")
    archive = make_dataset(folder)
    files = FileServer(folder)
    yield f"{files.url}/{archive.name}"
    files.close()


def data_uri_bytes(uri: str) -> bytes:
    assert uri.startswith("data:"), uri[:80]
    return base64.b64decode(uri.split(",", 1)[1])


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(url, json=body, timeout=600)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_cog_trains_then_predicts_with_the_trained_weights(
    tmp_path: Path, dataset_url: str
) -> None:
    trainer = CogServer(tmp_path, "train", {"COG_TRAIN_TYPE_STUB": "train.py:train"})
    try:
        result = post(
            f"{trainer.url}/trainings",
            {"input": debug_input(dataset_url)},
        )
    finally:
        trainer.stop()
    assert result["status"] == "succeeded", f"{result.get('error')}\n{result.get('logs')}"
    weights = data_uri_bytes(result["output"]["weights"])  # TrainingOutput(weights=Path)
    with tarfile.open(fileobj=io.BytesIO(weights)) as tar:
        assert "state_dict.bin" in tar.getnames()
    tar_path = tmp_path / "trained_model.tar"
    tar_path.write_bytes(weights)

    predictor = CogServer(
        tmp_path,
        "predict",
        {"COG_PREDICT_TYPE_STUB": "predict.py:Predictor", "COG_WEIGHTS": str(tar_path)},
    )
    try:
        result = post(
            f"{predictor.url}/predictions",
            {
                "input": {
                    "prompt": "synthetic test music",
                    "duration": 1.0,
                    "seed": 3,
                    "normalization_strategy": "peak",
                    "output_format": "wav",
                }
            },
        )
    finally:
        predictor.stop()
    assert result["status"] == "succeeded", f"{result.get('error')}\n{result.get('logs')}"
    audio = data_uri_bytes(result["output"])
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE" and len(audio) > 10_000
