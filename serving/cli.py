"""`musicgen-ft serve`: run the Replicate-compatible trainings API in the foreground."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from musicgen_ft.clirun import run_cli
from musicgen_ft.errors import InputError
from serving.config import ServerConfig, default_trainer_command

TOKENS_ENV = "MUSICGEN_FT_TOKENS"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="musicgen-ft serve",
        description="Serve Replicate's trainings API (POST .../trainings, GET /v1/trainings, "
        "webhooks) on this machine. State lives in one SQLite file.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    p.add_argument("--db", type=Path, default=Path("musicgen-ft.db"), help="the SQLite file")
    p.add_argument(
        "--token",
        action="append",
        default=[],
        help=f"a bearer token clients must send; repeat for several (or set {TOKENS_ENV}, "
        "comma-separated, to keep tokens out of the process list)",
    )
    p.add_argument(
        "--allow_private_urls",
        action="store_true",
        help="let datasets and webhooks use loopback/private addresses, over plain http:// too",
    )
    p.add_argument(
        "--data_dir",
        type=Path,
        default=None,
        help="where each training's logs, work dir and weights go (default: <db>.data)",
    )
    p.add_argument(
        "--public_url",
        default=None,
        help="base of the URLs in answers and webhooks, when clients reach the server through "
        "a proxy (default: the URL each request came to)",
    )
    p.add_argument(
        "--trainer",
        default=None,
        help="command that runs one training, flags appended (default: this Python with "
        "train.py); e.g. to wrap it in nice or a scheduler",
    )
    p.add_argument("--page_size", type=int, default=100, help="results per page (100)")
    p.add_argument("--log_level", default="info", help="uvicorn log level (info)")
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    tokens = [*args.token, *filter(None, os.environ.get(TOKENS_ENV, "").split(","))]
    tokens = [t.strip() for t in tokens if t.strip()]
    if not tokens:
        raise ValueError(f"give at least one --token (or set {TOKENS_ENV})")
    if args.page_size < 1:
        raise ValueError("--page_size must be 1 or more")
    db = args.db.resolve()
    data_dir = (args.data_dir or db.with_name(db.name + ".data")).resolve()
    trainer = tuple(shlex.split(args.trainer)) if args.trainer else default_trainer_command()
    return ServerConfig(
        db_path=db,
        data_dir=data_dir,
        tokens=tuple(dict.fromkeys(tokens)),
        allow_private_urls=args.allow_private_urls,
        public_url=args.public_url,
        trainer_command=trainer,
        page_size=args.page_size,
    )


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return run_cli(lambda: _serve(args), prog="musicgen-ft serve")


def _serve(args: argparse.Namespace) -> None:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        raise InputError("serve", str(exc)) from None
    import uvicorn

    from serving.app import create_app

    app = create_app(config)
    print(
        f"musicgen-ft serve: http://{args.host}:{args.port} db={config.db_path} "
        f"data={config.data_dir} tokens={len(config.tokens)} "
        f"private_urls={'allowed' if config.allow_private_urls else 'refused'}",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
