"""Command line of a fine-tune: the same inputs and defaults as Cog's `train()`."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from musicgen_ft.clirun import run_cli
from musicgen_ft.inputs import TrainInputs
from musicgen_ft.logs import setup_logging
from musicgen_ft.schema import add_arguments, values_from_namespace

logger = logging.getLogger("musicgen_ft")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Fine-tune MusicGen on your music; writes OUTPUT_DIR/trained_model.tar.",
    )
    add_arguments(parser, TrainInputs)
    parser.add_argument(
        "--output_dir",
        default=None,
        help="Folder for trained_model.tar, the logs and the work dir (default: runs/<date-time>).",
    )
    parser.add_argument(
        "--keep_work",
        action="store_true",
        help="Keep the work dir (chunks, manifests, checkpoints) after a successful run.",
    )
    parser.add_argument("--verbose", action="store_true", help="Also log the solver's details.")
    return parser


def parse_inputs(args: argparse.Namespace) -> TrainInputs:
    return TrainInputs.from_dict(values_from_namespace(args, TrainInputs))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output_dir = Path(args.output_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(output_dir / "job.log", verbose=args.verbose)
    return run_cli(lambda: _train(args, output_dir), where=output_dir)


def _train(args: argparse.Namespace, output_dir: Path) -> None:
    from musicgen_ft.pipeline import peak_memory_mb, run_job

    result = run_job(parse_inputs(args), output_dir, keep_work=args.keep_work)
    logger.info("stage timings:\n%s", result.times.table())
    memory = peak_memory_mb()
    logger.info(
        "peak memory: pipeline %.0f MB, training process %.0f MB",
        memory["pipeline_mb"],
        memory["training_mb"],
    )
    if result.tar_path is not None:
        print(result.tar_path)
