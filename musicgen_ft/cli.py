"""`musicgen-ft`: one command, thin subcommands that call the package that does the work."""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module with `main(argv: list[str]) -> int`, or "module:function", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("musicgen_ft.train_cli", "fine-tune a base model on a dataset (same as train.py)"),
    "predict": ("inference.cli", "generate music with a base or fine-tuned model"),
    "serve": ("serving.cli", "run the Replicate-compatible API with a training worker"),
    "worker": ("serving.cli:worker_main", "run trainings from a shared queue (no HTTP API)"),
    "download-weights": ("musicgen_ft.weights", "fetch model weights, with checksums"),
    "prepare": ("preprocessing.__main__", "fetch and prepare a dataset (python -m preprocessing)"),
    "label": ("labeling.__main__", "label audio files (python -m labeling)"),
}


def usage() -> str:
    lines = ["usage: musicgen-ft COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<18} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"musicgen-ft: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, _, function = COMMANDS[name][0].partition(":")
    entry = getattr(importlib.import_module(module_name), function or "main")
    return int(entry(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
