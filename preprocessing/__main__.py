"""`python -m preprocessing DATASET --model_version V --output_dir DIR [...]` (and
`musicgen-ft prepare`): fetch → unpack → preprocess → vocal removal, then `DIR/report.json`.

Exit status 0 on success, 1 when the dataset or the environment cannot be used, 2 for bad
arguments; the reason is one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from musicgen_ft.atomic import atomic_write_json
from musicgen_ft.clirun import run_cli
from musicgen_ft.constants import parse_bool
from musicgen_ft.errors import FineTuneError
from musicgen_ft.paths import cache_root as default_cache_root
from musicgen_ft.types import Chunk
from musicgen_ft.variants import get_variant
from preprocessing.audio import PrepSettings
from preprocessing.fetch import FetchSettings, fetch, is_url
from preprocessing.stage import prepare_dataset
from preprocessing.vocals import DEFAULT_MODEL, VocalSettings, check_available

PROG = "python -m preprocessing"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _bool(text: str) -> bool:
    value = parse_bool(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not true or false")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("dataset", help="HTTPS URL, archive, folder or audio file")
    parser.add_argument("--model_version", required=True, help="base model (sets rate/channels)")
    parser.add_argument("--output_dir", required=True, type=Path, help="where chunks go")
    parser.add_argument("--drop_vocals", type=_bool, default=True, metavar="true|false")
    parser.add_argument(
        "--allow_private_urls",
        action="store_true",
        help="admit URLs on private/loopback addresses (and plain http:// to them)",
    )
    parser.add_argument("--demucs_model", default=DEFAULT_MODEL)
    parser.add_argument("--demucs_repo", type=Path, default=None, help="local Demucs model dir")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    parser.add_argument(
        "--cache_dir",
        type=Path,
        default=None,
        help="cache of prepared chunks and separations (default: $MUSICGEN_FT_CACHE, else "
        "~/.cache/musicgen-ft/cache)",
    )
    parser.add_argument("--no_cache", action="store_true", help="neither use nor fill the cache")
    return parser


def _chunk_record(chunk: Chunk, base: Path) -> dict[str, Any]:
    return {
        "path": os.path.relpath(chunk.path, base),
        "source": chunk.source,
        "index": chunk.index,
        "start": round(chunk.start, 3),
        "duration": round(chunk.duration, 3),
        "caption": chunk.caption,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the stage for parsed arguments; returns the report written to report.json."""
    variant = get_variant(args.model_version)
    vocal_settings = VocalSettings(
        enabled=args.drop_vocals,
        model=args.demucs_model,
        repo=args.demucs_repo,
        device=args.device,
    ).validate()
    if args.workers is not None and args.workers < 1:
        raise FineTuneError(f"--workers={args.workers} must be at least 1")
    if not is_url(args.dataset):
        fetch(args.dataset, Path("."))  # a local path: only checks that it exists
    if vocal_settings.enabled:  # before any heavy work: weights present, settings sane
        check_available(vocal_settings)
    out: Path = args.output_dir.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache_root = None if args.no_cache else (args.cache_dir or default_cache_root()).expanduser()
    started = time.monotonic()
    prepared = prepare_dataset(
        args.dataset,
        PrepSettings(sample_rate=variant.sample_rate, channels=variant.channels),
        vocal_settings,
        out,
        FetchSettings(allow_private=args.allow_private_urls),
        workers=args.workers,
        cache_root=cache_root,
    )
    chunks, report = prepared.chunks, prepared.report
    data = report.to_dict()
    data.update(
        dataset=args.dataset if not is_url(args.dataset) else args.dataset.split("?", 1)[0],
        model_version=variant.name,
        sample_rate=variant.sample_rate,
        channels=variant.channels,
        seconds=round(time.monotonic() - started, 2),
        chunk_files=[_chunk_record(c, out) for c in chunks],
    )
    atomic_write_json(out / "report.json", data)
    return data


def summary(report: dict[str, Any]) -> str:
    vocals = report["vocal_removal"]
    vocal_text = (
        f"vocals removed with {vocals['model']} ({len(vocals['passed_through'])} chunks without)"
        if vocals.get("applied")
        else "vocals kept"
    )
    cached = ", from the cache" if report.get("cached") else ""
    return (
        f"prepared {report['chunks']} chunks ({report['minutes']:.1f} min) from "
        f"{len(report['files_used'])} of {report['files_seen']} audio files; "
        f"{len(report['files_rejected'])} rejected; {vocal_text}{cached}"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m preprocessing` and `musicgen-ft prepare`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(f"{PROG}: error: {exc} (see --help)", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return run_cli(lambda: _run_and_log(args), prog=PROG)


def _run_and_log(args: argparse.Namespace) -> None:
    report = run(args)
    log = logging.getLogger("preprocessing")
    for rejected in report["files_rejected"]:
        log.info("rejected %s: %s", rejected["path"], rejected["reason"])
    log.info("%s; report: %s", summary(report), args.output_dir / "report.json")


if __name__ == "__main__":
    sys.exit(main())
