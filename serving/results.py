"""A finished training's listening samples, loss curves and quality report, served out of its
trained_model.tar.

The tar lists them in `metadata.json` (`samples`: per prompt the fine-tuned and base clips;
`curves`: csv and png; `quality`: quality.json and its one-line summary). The training
object's `output` gets their URLs (and the summary line)
(`/v1/trainings/{id}/output/<name in the tar>`, behind the token), and each is streamed
straight from its place in the tar: nothing is extracted. The index of a tar (metadata and
member offsets) is read once and kept while the file is unchanged.
"""

from __future__ import annotations

import json
import tarfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from musicgen_ft.constants import TAR_NAME
from serving import jobfiles
from serving.edge import ApiError, TokenId
from serving.store import Store, TrainingRow

MEDIA_TYPES = {
    ".wav": "audio/wav", ".mp3": "audio/mpeg", ".png": "image/png", ".csv": "text/csv",
    ".json": "application/json",
}  # fmt: skip
CHUNK = 1 << 16
_KEEP = 64


@dataclass(frozen=True)
class TarIndex:
    metadata: dict[str, Any]
    members: dict[str, tuple[int, int]]  # name -> (offset of the data, size)

    def listed(self) -> set[str]:
        """The members metadata.json lists as results (the only ones served)."""
        names = {str(v) for v in (self.metadata.get("curves") or {}).values()}
        quality = self.metadata.get("quality") or {}
        if quality.get("file"):
            names.add(str(quality["file"]))
        for sample in self.metadata.get("samples") or []:
            names |= {str(sample.get(role)) for role in ("finetuned", "base") if sample.get(role)}
        return names & set(self.members)


class Results:
    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._cache: OrderedDict[tuple[str, int, int], TarIndex] = OrderedDict()
        self._lock = threading.Lock()

    def tar_of(self, training_id: str) -> Path:
        return jobfiles.output_dir(self._data_dir, training_id) / TAR_NAME

    def index(self, tar_path: Path) -> TarIndex | None:
        """The tar's metadata and members; None when it is missing or unreadable."""
        try:
            stat = tar_path.stat()
        except OSError:
            return None
        key = (str(tar_path), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            found = _read_index(tar_path)
        except (OSError, tarfile.TarError, ValueError):
            return None
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > _KEEP:
                self._cache.popitem(last=False)
        return found

    def output_of(self, row: TrainingRow, base: str) -> dict[str, Any]:
        """`samples` and `curves` of a succeeded training's output, as URLs."""
        if row.status != "succeeded":
            return {}
        index = self.index(self.tar_of(row.id))
        if index is None:
            return {}
        listed = index.listed()

        def url(name: object) -> str | None:
            text = str(name)
            return f"{base}/v1/trainings/{row.id}/output/{text}" if text in listed else None

        samples = [
            {
                "prompt": s.get("prompt"),
                "finetuned": url(s.get("finetuned")),
                "base": url(s.get("base")),
            }
            for s in index.metadata.get("samples") or []
        ]
        curves = {kind: url(name) for kind, name in (index.metadata.get("curves") or {}).items()}
        quality = index.metadata.get("quality") or {}
        report = (
            {"summary": quality.get("summary"), "json": url(quality["file"])}
            if quality.get("file")
            else None
        )
        return {"samples": samples, "curves": curves or None, "quality": report}

    def stream(self, tar_path: Path, name: str) -> StreamingResponse | None:
        index = self.index(tar_path)
        if index is None or name not in index.listed():
            return None
        offset, size = index.members[name]

        def chunks() -> Iterator[bytes]:
            with tar_path.open("rb") as f:
                f.seek(offset)
                left = size
                while left > 0:
                    data = f.read(min(CHUNK, left))
                    if not data:
                        return
                    left -= len(data)
                    yield data

        kind = MEDIA_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
        return StreamingResponse(chunks(), media_type=kind, headers={"content-length": str(size)})


def _read_index(tar_path: Path) -> TarIndex:
    members: dict[str, tuple[int, int]] = {}
    metadata: dict[str, Any] = {}
    with tarfile.open(tar_path) as tar:
        for member in tar:
            if member.isfile():
                members[member.name] = (member.offset_data, member.size)
                if member.name == "metadata.json":
                    f = tar.extractfile(member)
                    if f is not None:
                        metadata = json.load(f)
    return TarIndex(metadata if isinstance(metadata, dict) else {}, members)


def router(store: Store, results: Results) -> APIRouter:
    api = APIRouter()

    @api.get(
        "/v1/trainings/{training_id}/output/{name:path}",
        summary="A listening sample or a loss curve of a finished training",
        response_class=StreamingResponse,
    )
    def training_result(training_id: str, name: str, token: TokenId) -> StreamingResponse:
        row = store.training(training_id, token)
        found = None if row is None else results.stream(results.tar_of(row.id), name)
        if found is None:
            raise ApiError(404, "Not found", f"{name} of training {training_id} was not found.")
        return found

    return api
