"""Command line of generation: `python predict.py --weights T.tar --prompt ... --output F`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from inference.generate import FORMATS, NORMALIZATION, GenerateParams, generate, write_audio
from inference.loading import load_model
from musicgen_ft.errors import FineTuneError, InputError
from musicgen_ft.logs import setup_logging

logger = logging.getLogger("inference")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="predict.py", description="Generate music with MusicGen.")
    p.add_argument("--weights", help="trained_model.tar (path or URL); default: a base model")
    p.add_argument(
        "--model_version", default=None, help="base model when no --weights (default: small)"
    )
    p.add_argument("--prompt", default=None, help="text description")
    p.add_argument("--duration", type=float, default=8.0, help="seconds (default: 8)")
    p.add_argument("--output", default="output.wav", help="output file (default: output.wav)")
    p.add_argument(
        "--output_format",
        choices=FORMATS,
        default=None,
        help="wav or mp3 (default: from --output's extension, else wav)",
    )
    p.add_argument(
        "--input_audio",
        type=Path,
        default=None,
        help="audio to continue (with --continuation) or a melody (melody variants)",
    )
    p.add_argument("--continuation", action="store_true", help="continue input_audio")
    p.add_argument("--continuation_start", type=float, default=0.0)
    p.add_argument("--continuation_end", type=float, default=None)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top_k", type=int, default=250)
    p.add_argument("--top_p", type=float, default=0.0)
    p.add_argument("--classifier_free_guidance", type=float, default=3.0)
    p.add_argument("--normalization_strategy", choices=NORMALIZATION, default="loudness")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    output = Path(args.output)
    fmt = args.output_format or (
        output.suffix.lstrip(".") if output.suffix in (".wav", ".mp3") else "wav"
    )
    params = GenerateParams(
        prompt=args.prompt,
        duration=args.duration,
        input_audio=args.input_audio,
        continuation=args.continuation,
        continuation_start=args.continuation_start,
        continuation_end=args.continuation_end,
        top_k=args.top_k,
        top_p=args.top_p,
        temperature=args.temperature,
        classifier_free_guidance=args.classifier_free_guidance,
        seed=args.seed,
        normalization_strategy=args.normalization_strategy,
        output_format=fmt,
    )
    try:
        loaded = load_model(args.weights, args.model_version, args.device)
        wav = generate(loaded, params)
        path = write_audio(
            wav, loaded.model.sample_rate, output, fmt, params.normalization_strategy
        )
    except (InputError, FineTuneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InputError) else 1
    print(path)
    return 0
