"""Fetch the dataset: a local path as it is, or a URL streamed to the job's work dir.

Downloads go through `musicgen_ft.net.download`, the one guarded downloader: every hop's URL is
checked (https only, no credentials, every address of the host public unless `allow_private`),
redirects are followed by hand, and the connection is made to the address that was checked, so
a DNS answer that changes between the check and the connection never receives a request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from musicgen_ft import net
from musicgen_ft.errors import DatasetError, DownloadError, UnsafeUrlError
from musicgen_ft.net import is_url as is_url


@dataclass(frozen=True)
class FetchSettings:
    """How URLs are downloaded.

    Attributes:
        allow_private: Admit hosts that resolve to loopback/private/link-local addresses (and plain
            http:// to them): self-hosters with internal buckets, tests on 127.0.0.1.
        allow_http: Admit plain http:// to public hosts too.
        max_bytes: Largest download accepted.
        connect_timeout: Seconds to establish a connection.
        read_timeout: Seconds without a byte from the server before giving up.
        max_redirects: Redirects followed before giving up.
    """

    allow_private: bool = False
    allow_http: bool = False
    max_bytes: int = 20 * 1024**3
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    max_redirects: int = 5


def fetch(
    source: str,
    dest_dir: Path,
    settings: FetchSettings | None = None,
    transport: object | None = None,
    *,
    field: str = "dataset_path",
) -> Path:
    """Return a local path for `source`, downloading URLs into `dest_dir`.

    Args:
        source: An http(s) URL, or a local archive, folder or audio file.
        dest_dir: Folder a download is written to (nothing is written elsewhere).
        settings: Download limits and address policy.
        transport: An `httpx.BaseTransport` to use instead of the network (tests).
        field: The input `source` came from, named in messages (`dataset_path`, `labels_file`).

    Raises:
        DatasetError: naming the problem and what would be accepted.
    """
    settings = settings or FetchSettings()
    if is_url(source):
        return download(source, dest_dir, settings, transport, field=field)
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(
            f"{field}={source!r} does not exist; give an HTTPS URL or an existing "
            "archive, folder or audio file"
        )
    return path.resolve()


def download(
    url: str,
    dest_dir: Path,
    settings: FetchSettings,
    transport: object | None = None,
    *,
    field: str = "dataset_path",
) -> Path:
    """Download `url` into `dest_dir` through `musicgen_ft.net.download`. Returns the file.

    Raises:
        DatasetError: the URL is refused or the download failed (the message names `field`).
    """
    if transport is not None and not isinstance(transport, httpx.BaseTransport):
        raise TypeError(f"transport must be an httpx.BaseTransport, not {type(transport)}")
    try:
        return net.download(
            url,
            dest_dir / download_name(url),
            max_bytes=settings.max_bytes,
            allow_private=settings.allow_private,
            allow_http=settings.allow_http,
            field=field,
            transport=transport,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_redirects=settings.max_redirects,
        )
    except (UnsafeUrlError, DownloadError) as exc:
        raise DatasetError(str(exc)) from None


def download_name(url: str) -> str:
    """A safe file name for a download, from the URL's last path segment."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:120]
    return name or "download"
