"""Label review: export a prepared dataset's labels, edit them, re-import them as overrides.

    python -m labeling.review export LABELS_JSON OUT.csv|OUT.jsonl [--by source|chunk]
    (edit the file: any spreadsheet or text editor)
    then train with labels_file=OUT.csv: `load_overrides(path)` reads it back.

File format: one row per source file (default) or per chunk, columns
`source`, `chunk_id` (empty in per-source files), `key` ("F#"), `scale` ("major"/"minor"),
`bpm`, `genres`, `moods`, `instruments` ("deep house; techno": names separated by ";", scores
dropped), `description`. An empty cell keeps the automatic value; the single word `-` clears it.
JSONL rows have the same keys, with lists for genres/moods/instruments.

Overrides are keyed by source path (relative to the dataset root, as in `Chunk.source`) for
per-source rows and by chunk id for per-chunk rows; a chunk's override applies on top of its
source's.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from musicgen_ft.atomic import atomic_write_text
from musicgen_ft.clirun import run_cli
from musicgen_ft.errors import InputError
from musicgen_ft.types import Labels, LabelScore

COLUMNS = (
    "source",
    "chunk_id",
    "key",
    "scale",
    "bpm",
    "genres",
    "moods",
    "instruments",
    "description",
)
LIST_FIELDS = ("genres", "moods", "instruments")
CLEAR = "-"
SCALES = ("major", "minor")


def export_rows(
    labels: Mapping[str, Labels], sources: Mapping[str, str], by: str = "source"
) -> list[dict[str, Any]]:
    """Rows to review. `sources` maps chunk id -> source path. by: "source" or "chunk"."""
    rows: dict[str, dict[str, Any]] = {}
    for chunk_id in sorted(labels):
        item, source = labels[chunk_id], sources[chunk_id]
        row_key = source if by == "source" else chunk_id
        if row_key in rows:
            continue
        rows[row_key] = {
            "source": source,
            "chunk_id": chunk_id if by == "chunk" else "",
            "key": item.key or "",
            "scale": item.scale or "",
            "bpm": item.bpm if item.bpm is not None else "",
            **{f: [s.label for s in getattr(item, f)] for f in LIST_FIELDS},
            "description": item.description or "",
        }
    return list(rows.values())


def write_rows(rows: Iterable[Mapping[str, Any]], path: Path) -> None:
    rows = list(rows)
    if path.suffix.lower() == ".jsonl":
        atomic_write_text(path, "".join(json.dumps(dict(r)) + "\n" for r in rows))
        return
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        for f in LIST_FIELDS:
            value = row.get(f)
            flat[f] = value if isinstance(value, str) else "; ".join(value or [])
        writer.writerow(flat)
    atomic_write_text(path, buffer.getvalue())


def _read(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".jsonl":
        out = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as exc:
                    raise InputError("labels_file", f"{path}:{number}: not JSON ({exc})") from None
        return out
    with path.open(newline="", encoding="utf-8") as handle:
        return [dict(row) for row in csv.DictReader(handle)]


def _parse_row(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in ("key", "scale", "bpm", "description", *LIST_FIELDS):
        value = row.get(field)
        if value is None or value == "" or value == []:
            continue
        if value == CLEAR:
            out[field] = [] if field in LIST_FIELDS else None
            continue
        if field in LIST_FIELDS:
            items = value if isinstance(value, list) else str(value).split(";")
            out[field] = [str(v).strip() for v in items if str(v).strip()]
        elif field == "bpm":
            try:
                bpm = float(value)
            except (TypeError, ValueError):
                raise InputError("labels_file", f"{where}: bpm {value!r} is not a number") from None
            if not 20 <= bpm <= 400:
                raise InputError("labels_file", f"{where}: bpm {bpm} is outside 20..400")
            out[field] = bpm
        elif field == "scale":
            if str(value).lower() not in SCALES:
                raise InputError("labels_file", f"{where}: scale {value!r}; use major or minor")
            out[field] = str(value).lower()
        else:
            out[field] = str(value).strip()
    return out


def load_overrides(path: Path) -> dict[str, dict[str, Any]]:
    """Edited labels, keyed by source path (per-source rows) or chunk id (per-chunk rows).

    Each value holds only the fields the user set: key, scale, bpm (float), description (str),
    genres/moods/instruments (lists of names); None or [] where the user cleared a field.
    Raises InputError naming the file, the row and the bad value.
    """
    if not path.is_file():
        raise InputError("labels_file", f"{path} does not exist")
    overrides: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(_read(path), start=2):
        where = f"{path.name} row {number}"
        target = str(row.get("chunk_id") or "").strip() or str(row.get("source") or "").strip()
        if not target:
            raise InputError("labels_file", f"{where}: needs a source or a chunk_id")
        parsed = _parse_row(row, where)
        if parsed:
            overrides[target] = parsed
    return overrides


def apply_overrides(
    labels: Labels | None, source: str, chunk_id: str, overrides: Mapping[str, Mapping[str, Any]]
) -> Labels:
    """`labels` with the source's, then the chunk's overrides applied (edited labels score 1)."""
    out = Labels() if labels is None else Labels(**vars(labels))
    edited = False
    for target in (source, chunk_id):
        for field, value in overrides.get(target, {}).items():
            edited = True
            if field in LIST_FIELDS:
                setattr(out, field, [LabelScore(v, 1.0) for v in value or []])
            else:
                setattr(out, field, value)
    described = any("description" in overrides.get(t, {}) for t in (source, chunk_id))
    if edited and not described:
        from labeling.describe import compose_description

        out.description = compose_description(out) or None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labeling.review")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="labels.json of a prepared dataset -> CSV/JSONL")
    export.add_argument("labels_json", type=Path)
    export.add_argument("out", type=Path, help="OUT.csv or OUT.jsonl")
    export.add_argument("--by", choices=("source", "chunk"), default="source")
    check = sub.add_parser("check", help="parse an edited file and print the overrides")
    check.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    return run_cli(lambda: _review(args), prog="review")


def _review(args: argparse.Namespace) -> None:
    from labeling.stage import labels_from_dict

    if args.command == "export":
        data = json.loads(args.labels_json.read_text(encoding="utf-8"))
        labels = {cid: labels_from_dict(item) for cid, item in data["labels"].items()}
        sources = data.get("sources") or {}
        missing = sorted(set(labels) - set(sources))
        if missing:
            raise InputError("labels_json", f"{args.labels_json} has no source for {missing[:3]}")
        write_rows(export_rows(labels, sources, args.by), args.out)
        print(args.out)
    else:
        print(json.dumps(load_overrides(args.file), indent=1))


if __name__ == "__main__":
    sys.exit(main())
