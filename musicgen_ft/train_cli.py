"""Command line of a fine-tune: the same inputs and defaults as Cog's `train()`."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

from musicgen_ft.errors import FineTuneError, InputError
from musicgen_ft.inputs import TrainInputs, coerce, field_type, input_fields
from musicgen_ft.logs import setup_logging

logger = logging.getLogger("musicgen_ft")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Fine-tune MusicGen on your music; writes OUTPUT_DIR/trained_model.tar.",
    )
    for f in input_fields():
        default = None if f.default is dataclasses.MISSING else f.default
        kind = field_type(f)
        help_ = f.metadata.get("description", "")
        if f.default is not dataclasses.MISSING:
            help_ += f" (default: {default})"
        parser.add_argument(
            f"--{f.name}",
            required=f.default is dataclasses.MISSING,
            default=default,
            metavar="true|false" if kind is bool else kind.__name__.upper(),
            help=help_,
            # Booleans also work as bare flags: `--allow_private_urls`.
            nargs="?" if kind is bool else None,
            const="true" if kind is bool else None,
        )
    parser.add_argument(
        "--output_dir",
        default=None,
        help="Folder for trained_model.tar, the logs and the work dir (default: runs/<date-time>).",
    )
    parser.add_argument("--verbose", action="store_true", help="Also log the solver's details.")
    return parser


def parse_inputs(args: argparse.Namespace) -> TrainInputs:
    values = {}
    for f in input_fields():
        raw = getattr(args, f.name)
        if raw is None and f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        else:
            values[f.name] = coerce(f.name, raw, field_type(f))
    return TrainInputs(**values).validate()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(output_dir / "job.log", verbose=args.verbose)
    try:
        inputs = parse_inputs(args)
        from musicgen_ft.pipeline import peak_memory_mb, run_job

        result = run_job(inputs, output_dir)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FineTuneError as exc:
        logger.error("%s", exc)
        print(f"error: {str(exc).splitlines()[0]} (logs: {output_dir})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; work dir kept at {output_dir / 'work'}", file=sys.stderr)
        return 130
    logger.info("stage timings:\n%s", result.times.table())
    memory = peak_memory_mb()
    logger.info(
        "peak memory: pipeline %.0f MB, training process %.0f MB",
        memory["pipeline_mb"],
        memory["training_mb"],
    )
    if result.tar_path is not None:
        print(result.tar_path)
    return 0
