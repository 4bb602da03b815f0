"""Label review before training: `POST /v1/labels` runs the automatic labelling of a dataset
(one of this server's uploaded files) and `GET /v1/labels/{id}` returns each file's labels,
which the web page shows for editing and saves, through the files API, as the `labels_file`
of the training.

Each job is one `python -m serving.label_preview` process; its state is a JSON file in
`<data_dir>/labels/<id>.json` scoped to the token that asked. A job that was running when the
server stopped is reported failed with the reason (it is quick to ask again).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from musicgen_ft.atomic import atomic_write_json
from serving.config import REPO_ROOT
from serving.edge import ApiError, TokenId
from serving.ids import new_training_id

Resolve = Callable[[str, str, Request], Path | None]


class LabelRequest(BaseModel):
    dataset_path: str = Field(min_length=1, max_length=4096)


class LabelJobs:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "labels"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def _path(self, id: str) -> Path:
        assert id.isalnum(), id
        return self.dir / f"{id}.json"

    def start(self, token_id: str, dataset: Path) -> dict[str, Any]:
        id = new_training_id()
        state = {"id": id, "token_id": token_id, "status": "processing", "created_at": time.time()}
        atomic_write_json(self._path(id), state)
        with self._lock:
            self._running.add(id)
        threading.Thread(target=self._run, args=(id, dataset), daemon=True).start()
        return state

    def _run(self, id: str, dataset: Path) -> None:
        result = self.dir / f"{id}.result.json"
        run = subprocess.run(
            [sys.executable, "-m", "serving.label_preview", str(dataset), str(result)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        state = json.loads(self._path(id).read_text())
        if run.returncode == 0:
            state.update(status="succeeded", **json.loads(result.read_text()))
        else:
            lines = run.stderr.strip().splitlines() or [f"labelling exited with {run.returncode}"]
            state.update(status="failed", error=lines[-1])
        state["completed_at"] = time.time()
        atomic_write_json(self._path(id), state)
        result.unlink(missing_ok=True)
        with self._lock:
            self._running.discard(id)

    def get(self, id: str, token_id: str) -> dict[str, Any] | None:
        if not id.isalnum():
            return None
        try:
            state: dict[str, Any] = json.loads(self._path(id).read_text())
        except (OSError, ValueError):
            return None
        if state.get("token_id") != token_id:
            return None
        with self._lock:
            lost = state["status"] == "processing" and id not in self._running
        if lost:
            state.update(status="failed", error="The server restarted during labelling; ask again.")
        return {k: v for k, v in state.items() if k != "token_id"}


def router(jobs: LabelJobs, resolve: Resolve) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/labels", status_code=201, summary="Label a dataset for review (web page)")
    def create(body: LabelRequest, request: Request, token: TokenId) -> dict[str, Any]:
        dataset = resolve(body.dataset_path, token, request)
        if dataset is None:
            raise ApiError(
                422,
                "Invalid request",
                "dataset_path: give the URL of a file uploaded to this server (POST /v1/files)",
                invalid_fields=[{"field": "dataset_path", "message": "not an uploaded file"}],
            )
        state = jobs.start(token, dataset)
        return {k: v for k, v in state.items() if k != "token_id"}

    @r.get("/v1/labels/{label_id}", summary="A label review job and, when done, its labels")
    def get(label_id: str, token: TokenId) -> dict[str, Any]:
        state = jobs.get(label_id, token)
        if state is None:
            raise ApiError(404, "Not found", f"Label job {label_id} was not found.")
        return state

    return r
