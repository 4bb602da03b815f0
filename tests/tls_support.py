"""A `musicgen-ft serve` over https with a self-signed certificate made by `openssl`.

The official client turns a prediction's output into a `FileOutput` only for https URLs, so
the predictions tests serve https. Clients trust the certificate through `SSL_CERT_FILE`, the
standard variable httpx (and so the official client) reads; nothing in the client changes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from serving_support import Server


def self_signed(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1 and localhost."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class HttpsServer(Server):
    def __init__(self, tmp: Path, cert: Path, key: Path, **kwargs: Any) -> None:
        super().__init__(tmp, **kwargs)
        self.url = f"https://127.0.0.1:{self.port}"
        self.argv += ["--ssl_certfile", str(cert), "--ssl_keyfile", str(key)]


@contextmanager
def trusted(folder: Path) -> Iterator[tuple[Path, Path]]:
    """A fresh certificate that every httpx client of this process trusts meanwhile."""
    cert, key = self_signed(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(cert))
        yield cert, key
