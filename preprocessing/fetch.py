"""Fetch the dataset: a local path as it is, or a URL streamed to the job's work dir.

Downloads are guarded against server-side request forgery: every hop's host is resolved and
refused when any of its addresses is not globally routable (loopback, private, link-local,
cloud metadata, CGNAT, multicast, reserved), unless `allow_private` is set. Redirects are
followed by hand, at most `max_redirects` times, and each new URL is checked again. The peer
address of the connection actually made is checked too, so a DNS answer that changes between
the check and the connection is caught before any of the body is read.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from musicgen_ft.errors import DatasetError
from preprocessing.progress import Progress

logger = logging.getLogger(__name__)

_REDIRECTS = (301, 302, 303, 307, 308)
_BLOCK = 1 << 20


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


def is_url(source: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source))


def fetch(
    source: str,
    dest_dir: Path,
    settings: FetchSettings | None = None,
    transport: object | None = None,
) -> Path:
    """Return a local path for `source`, downloading URLs into `dest_dir`.

    Args:
        source: An http(s) URL, or a local archive, folder or audio file.
        dest_dir: Folder a download is written to (nothing is written elsewhere).
        settings: Download limits and address policy.
        transport: An `httpx.BaseTransport` to use instead of the network (tests).

    Raises:
        DatasetError: naming the problem and what would be accepted.
    """
    settings = settings or FetchSettings()
    if is_url(source):
        return download(source, dest_dir, settings, transport)
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(
            f"dataset_path={source!r} does not exist; give an HTTPS URL or an existing "
            "archive, folder or audio file"
        )
    return path.resolve()


def check_url(url: str, settings: FetchSettings) -> None:
    """Refuse a URL whose scheme or host is not allowed. Resolves the host (no traffic sent)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise DatasetError(f"dataset_path: {_redact(url)}: only https:// URLs are accepted")
    host = parts.hostname
    if not host:
        raise DatasetError(f"dataset_path: {_redact(url)} has no host name")
    if parts.username or parts.password:
        raise DatasetError(
            f"dataset_path: {_redact(url)}: credentials in the URL are not accepted; use a "
            "pre-signed URL instead"
        )
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise DatasetError(f"dataset_path: {_redact(url)} has an invalid port") from None
    addresses = resolve(host, port)
    blocked = [a for a in addresses if not is_public_address(a)]
    if blocked and not settings.allow_private:
        raise DatasetError(
            f"dataset_path: {_redact(url)}: host {host} resolves to a non-public address "
            f"({blocked[0]}); refusing it. Self-hosters with internal buckets can pass "
            "--allow_private_urls"
        )
    if scheme == "http" and not settings.allow_http and not (blocked and settings.allow_private):
        raise DatasetError(
            f"dataset_path: {_redact(url)}: plain http:// is not accepted; use https:// "
            "(plain http is admitted only for private addresses with --allow_private_urls)"
        )


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DatasetError(f"dataset_path: cannot resolve host {host!r} ({exc})") from None
    addresses = sorted({str(info[4][0]) for info in infos})
    if not addresses:
        raise DatasetError(f"dataset_path: host {host!r} has no address")
    return addresses


def is_public_address(address: str) -> bool:
    """True for globally routable unicast addresses (metadata, CGNAT and ULA are not)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def download(
    url: str, dest_dir: Path, settings: FetchSettings, transport: object | None = None
) -> Path:
    """Stream `url` to a file in `dest_dir`, following checked redirects. Returns the file."""
    import httpx

    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.read_timeout,
        pool=settings.connect_timeout,
    )
    kwargs: dict[str, object] = {"timeout": timeout, "follow_redirects": False}
    if transport is not None:
        kwargs["transport"] = transport
    current = url
    with httpx.Client(**kwargs) as client:  # type: ignore[arg-type]
        for _hop in range(settings.max_redirects + 1):
            check_url(current, settings)
            try:
                with client.stream("GET", current) as response:
                    _check_peer(response, current, settings)
                    if response.status_code in _REDIRECTS:
                        location = response.headers.get("location")
                        if not location:
                            raise DatasetError(
                                f"dataset_path: {_redact(current)} redirected without a Location"
                            )
                        current = urljoin(current, location)
                        continue
                    if response.status_code != 200:
                        raise DatasetError(
                            f"dataset_path: {_redact(current)} answered HTTP "
                            f"{response.status_code} {response.reason_phrase}; check that the "
                            "URL is public and still valid"
                        )
                    return _save(response, current, dest_dir, settings)
            except httpx.TimeoutException as exc:
                raise DatasetError(
                    f"dataset_path: {_redact(current)} did not answer in time "
                    f"({type(exc).__name__}); check the URL or try again later"
                ) from None
            except httpx.HTTPError as exc:
                raise DatasetError(
                    f"dataset_path: downloading {_redact(current)} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
    raise DatasetError(
        f"dataset_path: {_redact(url)} redirected more than {settings.max_redirects} times; "
        "give the final URL"
    )


def _check_peer(response: object, url: str, settings: FetchSettings) -> None:
    """Re-check the address actually connected to (guards against DNS rebinding)."""
    if settings.allow_private:
        return
    stream = getattr(response, "extensions", {}).get("network_stream")
    if stream is None:
        return
    peer = stream.get_extra_info("server_addr")
    if peer and not is_public_address(str(peer[0])):
        raise DatasetError(
            f"dataset_path: {_redact(url)} connected to a non-public address ({peer[0]}); "
            "refusing it"
        )


def _save(response: object, url: str, dest_dir: Path, settings: FetchSettings) -> Path:
    import httpx

    assert isinstance(response, httpx.Response)
    declared = response.headers.get("content-length")
    total = int(declared) if declared and declared.isdigit() else None
    if total is not None and total > settings.max_bytes:
        raise DatasetError(_too_large(url, total, settings))
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / download_name(url)
    part = target.with_name(target.name + ".part")
    received = 0
    started = time.monotonic()
    try:
        with part.open("wb") as handle, Progress("download", total, unit="B") as progress:
            for block in response.iter_bytes(_BLOCK):
                received += len(block)
                if received > settings.max_bytes:
                    raise DatasetError(_too_large(url, received, settings))
                handle.write(block)
                progress.update(len(block))
        if total is not None and received != total:
            raise DatasetError(
                f"dataset_path: {_redact(url)}: the download stopped after {received} of "
                f"{total} bytes; try again"
            )
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)
    logger.info(
        "downloaded %s (%.1f MB in %.1f s)",
        _redact(url),
        received / 1e6,
        time.monotonic() - started,
    )
    return target


def download_name(url: str) -> str:
    """A safe file name for a download, from the URL's last path segment."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:120]
    return name or "download"


def _too_large(url: str, size: int, settings: FetchSettings) -> str:
    return (
        f"dataset_path: {_redact(url)} is larger than the {settings.max_bytes / 1e9:.1f} GB limit "
        f"({size / 1e9:.1f} GB or more); split the dataset or raise the limit"
    )


def _redact(url: str) -> str:
    """The URL without its query string (pre-signed URLs carry secrets there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    tail = "?…" if parts.query else ""
    return f"{parts.scheme}://{host}{parts.path}{tail}"
