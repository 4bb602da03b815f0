"""Typed errors. Library code raises these; the CLI, Cog and the server turn them into messages."""

from __future__ import annotations


class FineTuneError(Exception):
    """Base class of every error meant for the user (one clear line, no traceback)."""


class InputError(FineTuneError):
    """A user input is invalid. Names the field and what would be accepted."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnsafeUrlError(InputError):
    """A URL is malformed or points where this program may not go (loopback, private networks,
    cloud metadata, plain http to a public host). Names the field; the message says the fix."""


class DownloadError(FineTuneError):
    """A download from a URL a field names failed: HTTP status, timeout, size, checksum."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DatasetError(FineTuneError):
    """The dataset cannot be fetched, unpacked or used."""


class WeightsMissingError(FineTuneError):
    """Model weights are not available locally and cannot be downloaded."""


class TrainingError(FineTuneError):
    """The training subprocess failed. Carries the exit code and the tail of its log."""

    def __init__(self, message: str, log_tail: str = "", returncode: int | None = None) -> None:
        super().__init__(message)
        self.log_tail = log_tail
        self.returncode = returncode

    def __str__(self) -> str:
        base = super().__str__()
        if self.log_tail:
            return f"{base}\n--- last lines of the training log ---\n{self.log_tail}"
        return base


class StageUnavailableError(FineTuneError):
    """A pipeline stage was requested but cannot run here (missing models or packages)."""
