"""Where one training's files live under the server's data dir.

<data_dir>/trainings/<id>/logs.txt    everything the trainer printed, plus server notes
<data_dir>/trainings/<id>/output/     the trainer's --output_dir (work dir, trained_model.tar)
"""

from __future__ import annotations

import time
from pathlib import Path


def job_dir(data_dir: Path, training_id: str, kind: str = "trainings") -> Path:
    """The folder of one job; `kind` is "trainings" or "predictions"."""
    assert training_id.isalnum(), training_id
    return data_dir / kind / training_id


def log_path(data_dir: Path, training_id: str, kind: str = "trainings") -> Path:
    return job_dir(data_dir, training_id, kind) / "logs.txt"


def output_dir(data_dir: Path, training_id: str) -> Path:
    return job_dir(data_dir, training_id) / "output"


def read_logs(data_dir: Path, training_id: str, kind: str = "trainings") -> str:
    try:
        return log_path(data_dir, training_id, kind).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def note(data_dir: Path, training_id: str, message: str) -> None:
    """Append a line from the server itself to a training's log."""
    path = log_path(data_dir, training_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with path.open("a", encoding="utf-8") as f:
        f.write(f"[serve {stamp}] {message}\n")


def last_line(text: str) -> str | None:
    for line in reversed(text.splitlines()):
        if line.strip() and not line.startswith("[serve "):
            return line.strip()
    return None
