"""Identifiers and timestamps in the forms Replicate uses."""

from __future__ import annotations

import hashlib
import secrets
import string
from datetime import datetime, timezone

_ALPHABET = string.ascii_lowercase + string.digits


def new_training_id() -> str:
    """A 26-character lowercase id, like Replicate's prediction and training ids."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(26))


def new_version_id() -> str:
    """A 64-hex-digit version id, like Replicate's."""
    return secrets.token_hex(32)


def token_id(token: str) -> str:
    """The stored identity of a bearer token (the token itself is never written to disk)."""
    return hashlib.sha256(token.encode()).hexdigest()


def iso(ts: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC (`2024-01-02T03:04:05.123456Z`), or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
