"""A training killed mid-run resumes from its last checkpoint when run again the same way,
even with another number of training processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_killed_training_resumes_from_its_checkpoint(example_archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable, "train.py", "--dataset_path", str(example_archive),
        "--model_version", "debug", "--drop_vocals", "false", "--auto_labeling", "false",
        "--epochs", "3", "--updates_per_epoch", "2", "--batch_size", "2",
        "--optimizer", "adamw", "--lr", "1e-3", "--sample_prompts", "1",
        "--sample_duration", "1", "--output_dir", str(out),
    ]  # fmt: skip
    first = subprocess.Popen(
        cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    xps = out / "work" / "train" / "dora" / "xps"
    deadline = time.monotonic() + 300
    # checkpoint.th is what the solver restores from (written atomically after checkpoint_1.th).
    while not list(xps.glob("*/checkpoint.th")):
        assert first.poll() is None, "the first run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert not (out / "trained_model.tar").exists()
    assert (out / "training.log").is_file()  # the killed job kept its log and work dir

    # Resumed with another process count: the world size is not part of the job's identity.
    env = {**os.environ, "MUSICGEN_FT_CPU_PROCESSES": "2"}
    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming from the checkpoint" in second.stderr
    log = (out / "training.log").read_text()
    assert "Checkpoint loaded from" in log
    assert "--ddp_workers 2" in log  # the second run trained with two processes
    with tarfile.open(out / "trained_model.tar") as tar:
        meta = json.loads(tar.extractfile("metadata.json").read())  # type: ignore[union-attr]
    assert [entry["train"]["ce"] > 0 for entry in meta["history"]] == [True, True, True]
