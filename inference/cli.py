"""Command line of generation: `python predict.py --weights T.tar --prompt ... --output F`."""

from __future__ import annotations

import argparse
from pathlib import Path

from inference.generate import generate, write_audio
from inference.loading import load_model
from inference.params import FORMATS, GenerateParams
from musicgen_ft.clirun import run_cli
from musicgen_ft.logs import setup_logging
from musicgen_ft.schema import add_arguments, parse, values_from_namespace


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="predict.py", description="Generate music with MusicGen.")
    p.add_argument("--weights", help="trained_model.tar (path or URL); default: a base model")
    p.add_argument(
        "--model_version", default=None, help="base model when no --weights (default: small)"
    )
    p.add_argument("--output", default="output.wav", help="output file (default: output.wav)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument(
        "--allow_private_urls",
        action="store_true",
        help="let --weights be a URL on a loopback/private address (internal servers)",
    )
    add_arguments(p, GenerateParams)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    return run_cli(lambda: _predict(args))


def _predict(args: argparse.Namespace) -> None:
    output = Path(args.output)
    values = values_from_namespace(args, GenerateParams)
    suffix = output.suffix.lstrip(".")
    if "output_format" not in values and suffix in FORMATS:
        values["output_format"] = suffix  # from --output's extension
    params = parse(GenerateParams, values)
    loaded = load_model(
        args.weights, args.model_version, args.device, allow_private=args.allow_private_urls
    )
    wav = generate(loaded, params)
    path = write_audio(
        wav, loaded.model.sample_rate, output, params.output_format, params.normalization_strategy
    )
    print(path)
