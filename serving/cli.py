"""`musicgen-ft serve` (the API with a worker) and `musicgen-ft worker` (a worker alone)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from musicgen_ft.clirun import run_cli
from musicgen_ft.errors import InputError
from serving.config import ServerConfig, default_trainer_command
from serving.db import database_url, is_shared, redact

TOKENS_ENV = "MUSICGEN_FT_TOKENS"


def _queue_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default="musicgen-ft.db",
        help="the state: a SQLite file (default musicgen-ft.db), or postgresql://user@host/db "
        "shared by several servers and workers (one queue across machines)",
    )
    p.add_argument(
        "--data_dir",
        type=Path,
        default=None,
        help="where each training's logs, work dir and weights go (default: <db>.data for "
        "SQLite; required with PostgreSQL, on storage every server and worker sees)",
    )
    p.add_argument(
        "--trainer",
        default=None,
        help="command that runs one training, flags appended (default: this Python with "
        "train.py); e.g. to wrap it in nice or a scheduler",
    )
    p.add_argument(
        "--stale_s",
        type=float,
        default=30.0,
        help="seconds without a heartbeat after which a worker counts as dead and its "
        "training is resumed by another (30)",
    )
    p.add_argument(
        "--allow_private_urls",
        action="store_true",
        help="let datasets and webhooks use loopback/private addresses, over plain http:// too",
    )
    p.add_argument(
        "--predict_device",
        default="auto",
        help="where predictions generate: auto (cuda if available, else cpu), cpu, cuda, "
        "cuda:N; beside trainings on the same GPU by default (docs/api.md)",
    )
    p.add_argument(
        "--predict_models",
        type=int,
        default=2,
        help="models the predictor keeps loaded, least recently used unloaded first (2)",
    )
    p.add_argument(
        "--predict_idle_s",
        type=float,
        default=600.0,
        help="seconds without a prediction after which the predictor unloads its models, "
        "giving their GPU memory back to trainings (600)",
    )


def worker_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="musicgen-ft worker",
        description="Run trainings from a shared queue, without the HTTP API: start one on "
        "each GPU machine with the same --db postgresql://... and --data_dir.",
    )
    _queue_arguments(p)
    return p


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="musicgen-ft serve",
        description="Serve Replicate's trainings API (POST .../trainings, GET /v1/trainings, "
        "webhooks) on this machine, with a worker that runs the trainings.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    _queue_arguments(p)
    p.add_argument(
        "--token",
        action="append",
        default=[],
        help=f"a bearer token clients must send; repeat for several (or set {TOKENS_ENV}, "
        "comma-separated, to keep tokens out of the process list)",
    )
    p.add_argument(
        "--public_url",
        default=None,
        help="base of the URLs in answers and webhooks, when clients reach the server through "
        "a proxy (default: the URL each request came to)",
    )
    p.add_argument("--page_size", type=int, default=100, help="results per page (100)")
    p.add_argument(
        "--max_file_mb",
        type=int,
        default=2048,
        help="largest upload of POST /v1/files, in MiB (2048), streamed to disk",
    )
    p.add_argument(
        "--ssl_certfile",
        default=None,
        help="serve https with this certificate (PEM); the official client reads prediction "
        "outputs as files only from https URLs",
    )
    p.add_argument("--ssl_keyfile", default=None, help="the private key of --ssl_certfile")
    p.add_argument(
        "--no_worker",
        action="store_true",
        help="serve the API only; trainings are run by `musicgen-ft worker` processes "
        "sharing the --db",
    )
    p.add_argument("--log_level", default="info", help="uvicorn log level (info)")
    return p


def config_from_args(args: argparse.Namespace, *, serve: bool = True) -> ServerConfig:
    tokens: list[str] = []
    if serve:
        tokens = [*args.token, *filter(None, os.environ.get(TOKENS_ENV, "").split(","))]
        tokens = [t.strip() for t in tokens if t.strip()]
        if not tokens:
            raise ValueError(f"give at least one --token (or set {TOKENS_ENV})")
        if args.page_size < 1:
            raise ValueError("--page_size must be 1 or more")
    if args.stale_s < 1:
        raise ValueError("--stale_s must be 1 or more")
    if args.predict_models < 1:
        raise ValueError("--predict_models must be 1 or more")
    url = database_url(args.db)
    if args.data_dir is None:
        if is_shared(url):
            raise ValueError(
                "give --data_dir with a PostgreSQL --db: a directory every server and worker "
                "of this queue sees (shared storage)"
            )
        db_file = Path(url.removeprefix("sqlite:///"))
        args.data_dir = db_file.with_name(db_file.name + ".data")
    trainer = tuple(shlex.split(args.trainer)) if args.trainer else default_trainer_command()
    extra: dict[str, Any] = {}
    if serve:
        if args.max_file_mb < 1:
            raise ValueError("--max_file_mb must be 1 or more")
        if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
            raise ValueError("give --ssl_certfile and --ssl_keyfile together")
        extra = {
            "page_size": args.page_size,
            "run_worker": not args.no_worker,
            "max_file_bytes": args.max_file_mb << 20,
        }
    return ServerConfig(
        db=url,
        data_dir=args.data_dir.resolve(),
        tokens=tuple(dict.fromkeys(tokens)),
        allow_private_urls=args.allow_private_urls,
        public_url=getattr(args, "public_url", None),
        trainer_command=trainer,
        stale_s=args.stale_s,
        heartbeat_s=min(5.0, args.stale_s / 4),
        predict_device=args.predict_device,
        predict_models=args.predict_models,
        predict_idle_s=args.predict_idle_s,
        **extra,
    )


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return run_cli(lambda: _serve(args), prog="musicgen-ft serve")


def worker_main(argv: list[str]) -> int:
    args = worker_parser().parse_args(argv)
    return run_cli(lambda: _work(args), prog="musicgen-ft worker")


def _work(args: argparse.Namespace) -> None:
    try:
        config = config_from_args(args, serve=False)
    except ValueError as exc:
        raise InputError("worker", str(exc)) from None
    from serving.app import run_worker_only

    print(
        f"musicgen-ft worker: db={redact(str(config.db))} data={config.data_dir}",
        file=sys.stderr,
        flush=True,
    )
    run_worker_only(config)


def _serve(args: argparse.Namespace) -> None:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        raise InputError("serve", str(exc)) from None
    import uvicorn

    from serving.app import create_app

    app = create_app(config)
    scheme = "https" if args.ssl_certfile else "http"
    print(
        f"musicgen-ft serve: {scheme}://{args.host}:{args.port} db={redact(str(config.db))} "
        f"data={config.data_dir} tokens={len(config.tokens)} "
        f"private_urls={'allowed' if config.allow_private_urls else 'refused'}",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        # An idle TLS keep-alive client never answers the close: do not wait for it long.
        timeout_graceful_shutdown=5 if args.ssl_certfile else None,
    )
