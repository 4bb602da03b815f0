"""`python -m labeling PATH [PATH ...]`: label audio files, one JSON object per file and line.

Each line has `path`, `key` (e.g. "F#"), `scale` ("major"/"minor"), `key_strength`, `bpm`,
`bpm_confidence`, `genres`, `moods`, `instruments` (lists of {label, score}; empty when the
tagger models are absent) and `description`. Which kinds are unavailable, and why, goes to
stderr. Models are looked up in --models (default: `$MUSICGEN_FT_MODELS/essentia`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from musicgen_ft.clirun import run_cli
from musicgen_ft.constants import AUDIO_EXTENSIONS
from musicgen_ft.errors import InputError


def audio_files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
            )
        elif path.is_file():
            found.append(path)
        else:
            raise InputError("paths", f"{path}: no such file or folder")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labeling", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="audio files or folders")
    parser.add_argument("--models", type=Path, default=None, help="tagger models folder")
    args = parser.parse_args(argv)
    return run_cli(lambda: _label(args), prog="labeling")


def _label(args: argparse.Namespace) -> int:
    from labeling.models import default_models_dir
    from labeling.stage import LabelSettings, label_source
    from labeling.taggers import Taggers
    from musicgen_ft.types import Chunk

    logging.basicConfig(level=logging.WARNING, format="labeling: %(message)s")
    import essentia

    essentia.log.infoActive = False
    files = audio_files(args.paths)
    if not files:
        raise InputError("paths", "no audio files found in " + ", ".join(map(str, args.paths)))
    settings = LabelSettings(models_dir=args.models or default_models_dir())
    taggers = Taggers(settings.models_dir)
    for kind, reason in taggers.missing.items():
        print(f"labeling: {kind} unavailable: {reason}", file=sys.stderr)
    failures = 0
    for path in files:
        import soundfile as sf

        try:
            info = sf.info(str(path))
        except (RuntimeError, OSError) as exc:
            print(f"labeling: {path}: cannot be decoded ({exc})", file=sys.stderr)
            failures += 1
            continue
        chunk = Chunk(path, path.name, 0, 0.0, float(info.duration), info.samplerate, info.channels)
        labels = label_source([chunk], settings, taggers)[chunk.chunk_id]
        record: dict[str, Any] = {"path": str(path)}
        record.update(
            {
                "key": labels.key,
                "scale": labels.scale,
                "key_strength": labels.key_strength,
                "bpm": labels.bpm,
                "bpm_confidence": labels.bpm_confidence,
                **{
                    kind: [{"label": s.label, "score": s.score} for s in getattr(labels, kind)]
                    for kind in ("genres", "moods", "instruments")
                },
                "description": labels.description,
            }
        )
        print(json.dumps(record), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
