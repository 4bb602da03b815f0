"""`python -m serving.label_preview DATASET OUT.json`: the automatic labels of every file of a
dataset, for review before training (the web page's label review step).

The dataset is unpacked with the trainer's own safe unpacker, so each file's `source` is the
path the trainer will see and a reviewed labels file written from these rows (the format of
`labeling.review`) applies to the same files. Labels come from `python -m labeling` (key and
tempo always; genres, moods and instruments when the tagger models are present).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from musicgen_ft.atomic import atomic_write_json
from musicgen_ft.clirun import run_cli
from musicgen_ft.errors import DatasetError
from preprocessing.unpack import unpack

ROW_KEYS = ("key", "scale", "bpm", "genres", "moods", "instruments", "description")


def _names(scores: Any) -> list[str]:
    return [s["label"] if isinstance(s, dict) else str(s) for s in scores or []]


def preview(dataset: Path, out: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="label-preview-") as tmp:
        unpacked = unpack(dataset, Path(tmp) / "dataset")
        if not unpacked.audio:
            raise DatasetError(f"{dataset.name} holds no audio file to label")
        run = subprocess.run(
            [sys.executable, "-m", "labeling", *map(str, unpacked.audio)],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["labeling failed"])[-1]
            raise DatasetError(last)
        rows = []
        for line in run.stdout.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            source = Path(item["path"]).relative_to(unpacked.root).as_posix()
            row: dict[str, Any] = {"source": source}
            for key in ROW_KEYS:
                value = item.get(key)
                row[key] = _names(value) if key in ("genres", "moods", "instruments") else value
            rows.append(row)
        notes = [line for line in run.stderr.splitlines() if line.strip()]
    result = {"files": rows, "notes": notes}
    atomic_write_json(out, result)
    return result


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m serving.label_preview DATASET OUT.json", file=sys.stderr)
        return 2
    return run_cli(lambda: _run(Path(args[0]), Path(args[1])), prog="label preview")


def _run(dataset: Path, out: Path) -> None:
    preview(dataset, out)


if __name__ == "__main__":
    sys.exit(main())
