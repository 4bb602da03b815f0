"""What makes two runs the same training, and the record a job keeps in its output dir.

A job's identity hashes every input that changes what is trained (not where the dataset was
found, not the private-URL switch, not the number of processes) and the manifest it trains on:
each example's audio content and its MusicInfo (descriptions, labels). So a re-run with the
same inputs on the same data is the same job (resumed, or reported finished), and anything else
is a different job: refused in an output dir that holds another one, never silently resumed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicgen_ft.atomic import atomic_write_json
from musicgen_ft.cache import content_hash
from musicgen_ft.errors import InputError
from musicgen_ft.inputs import TrainInputs

RECORD_FILE = "job.json"
# Inputs that change nothing the training produces: where the files were found and the
# operator's address policy. The content they point at is part of the identity instead.
NOT_IN_IDENTITY = ("dataset_path", "labels_file", "allow_private_urls")


def result_inputs(inputs: TrainInputs) -> dict[str, Any]:
    return {k: v for k, v in inputs.to_dict().items() if k not in NOT_IN_IDENTITY}


def job_identity(inputs: TrainInputs, egs_dir: Path) -> str:
    """Hash of the result-changing inputs and of every example (audio content and info)."""
    digest = hashlib.sha256(json.dumps(result_inputs(inputs), sort_keys=True).encode())
    for split in ("train", "valid"):
        digest.update(f"\x00{split}\x00".encode())
        for line in (egs_dir / split / "data.jsonl").read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            wav = Path(json.loads(line)["path"])
            digest.update(content_hash(wav).encode())
            digest.update(wav.with_suffix(".json").read_bytes())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class JobRecord:
    """`job.json` of an output dir."""

    inputs: dict[str, Any]
    identity: str | None = None
    finished: bool = False

    @classmethod
    def read(cls, output_dir: Path) -> JobRecord | None:
        try:
            data = json.loads((output_dir / RECORD_FILE).read_text(encoding="utf-8"))
            return cls(
                inputs=dict(data["inputs"]),
                identity=data.get("identity"),
                finished=bool(data.get("finished")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, output_dir: Path) -> None:
        atomic_write_json(
            output_dir / RECORD_FILE,
            {"inputs": self.inputs, "identity": self.identity, "finished": self.finished},
        )


def check_same_inputs(output_dir: Path, inputs: TrainInputs) -> None:
    """Refuse, before any work, an output dir that holds a job with other inputs."""
    record = JobRecord.read(output_dir)
    if record is None:
        return
    current = result_inputs(inputs)
    differ = sorted(
        k for k in set(current) | set(record.inputs) if current.get(k) != record.inputs.get(k)
    )
    if differ:
        raise InputError(
            "output_dir",
            f"{output_dir} holds another job (it differs in {', '.join(differ)}); give a new "
            "--output_dir, or delete that folder to start over",
        )


def check_same_data(output_dir: Path, identity: str) -> JobRecord | None:
    """Refuse an output dir whose job trained on other data; return its record if the same."""
    record = JobRecord.read(output_dir)
    if record is None or record.identity is None:
        return record
    if record.identity != identity:
        raise InputError(
            "output_dir",
            f"{output_dir} holds a job trained on other data (the dataset's audio, captions or "
            "labels changed); give a new --output_dir, or delete that folder to start over",
        )
    return record
