"""Settings of one server, chosen by the operator at start-up."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_trainer_command() -> tuple[str, ...]:
    """The trainer every job runs: this interpreter with the repository's `train.py`."""
    return (sys.executable, str(REPO_ROOT / "train.py"))


@dataclass(frozen=True)
class ServerConfig:
    """Everything the app, the worker and the webhook sender need to know.

    Attributes:
        db: The database holding every job, model and version: a SQLite file, or a
            `postgresql://` URL shared by several servers and workers.
        data_dir: Where each training's log, work dir and weights are kept. Servers and
            workers sharing a PostgreSQL queue must see the same directory (shared storage).
        tokens: Bearer tokens accepted; each token sees only its own objects.
        allow_private_urls: Let datasets and webhooks use loopback/private addresses and plain
            http://. Decided by the operator, never by an API request.
        public_url: Base of the URLs the API returns; None means the request's own base URL.
        trainer_command: Command prefix of the trainer; the job's flags are appended.
        page_size: Results per page of list endpoints.
        max_body_bytes: Largest request body accepted (413 above).
        cancel_grace_s: Seconds between SIGTERM and SIGKILL of a canceled training.
        webhook_retry_base_s: First retry delay of terminal webhooks; it doubles each time.
        webhook_max_attempts: Attempts for a terminal webhook before giving up.
        run_worker: Whether this process runs trainings (False: an HTTP front only).
        heartbeat_s: How often a worker renews its hold on the training it runs.
        stale_s: Silence after which a worker counts as dead and its training is resumed
            by another worker.
        max_attempts: Starts of one training (the first and its resumes) before it fails.
        predict_device: Where the predictor generates: auto (cuda if available, else cpu),
            cpu, cuda, cuda:N. By default the GPU trainings use (see serving/predict_runner).
        predict_models: Models the predictor keeps loaded (least recently used unloaded).
        predict_idle_s: Seconds without a prediction after which its models are unloaded.
        max_file_bytes: Largest upload of POST /v1/files (413 above).
    """

    db: str | Path
    data_dir: Path
    tokens: tuple[str, ...]
    allow_private_urls: bool = False
    public_url: str | None = None
    trainer_command: tuple[str, ...] = field(default_factory=default_trainer_command)
    page_size: int = 100
    max_body_bytes: int = 1 << 20
    cancel_grace_s: float = 5.0
    webhook_retry_base_s: float = 1.0
    webhook_max_attempts: int = 8
    run_worker: bool = True
    heartbeat_s: float = 5.0
    stale_s: float = 30.0
    max_attempts: int = 3
    predict_device: str = "auto"
    predict_models: int = 2
    predict_idle_s: float = 600.0
    max_file_bytes: int = 2 << 30

    def __post_init__(self) -> None:
        assert self.page_size >= 1
        assert self.stale_s > 2 * self.heartbeat_s > 0
