"""Every outbound request of the program: one address policy, one guarded connection, one
downloader.

Requests are guarded against server-side request forgery (SSRF):

* `check_url` refuses a URL before anything is sent: the scheme must be https (plain http only
  for private hosts with the private-URL switch on, or with `allow_http`), no credentials, a
  valid port, and a host whose every address is public (`is_public_address`).
* The connection itself is made by `GuardedBackend`, an httpcore network backend: it resolves the
  host again with `resolve`, checks every address, and connects to the checked IP; TLS SNI and
  the Host header stay the original name. A DNS answer that changes between the check and the
  connection (DNS rebinding) is therefore refused before a byte reaches the address.
* `download` follows redirects by hand, checking every hop, streams to `dest.part`, caps the
  size, verifies an optional SHA-256 and renames into place.

Query strings are left out of every message (pre-signed URLs carry their secret there).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx

from musicgen_ft.constants import env_flag
from musicgen_ft.errors import DownloadError, UnsafeUrlError
from preprocessing.progress import Progress

__all__ = [
    "ALLOW_PRIVATE_ENV",
    "DownloadError",
    "GuardedBackend",
    "GuardedTransport",
    "UnsafeUrlError",
    "allow_private_from_env",
    "check_url",
    "download",
    "guarded_client",
    "is_public_address",
    "is_url",
    "redact",
    "resolve",
]

logger = logging.getLogger(__name__)

ALLOW_PRIVATE_ENV = "MUSICGEN_FT_ALLOW_PRIVATE_URLS"
PRIVATE_HINT = (
    "if this private host is intended, turn on the private-URL switch (--allow_private_urls)"
)

_REDIRECTS = (301, 302, 303, 307, 308)
_BLOCK = 1 << 20
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
# Refused whatever the running Python's ipaddress tables say (they changed across versions).
_ALWAYS_REFUSED = (
    _NAT64_LOCAL,  # local-use NAT64 (RFC 8215): a site's own translator
    ipaddress.IPv6Network("fec0::/10"),  # deprecated site-local
    ipaddress.IPv4Network("100.64.0.0/10"),  # CGNAT
)


def is_url(source: str) -> bool:
    """True when `source` starts with a URL scheme (`https://`, `ftp://`, ...)."""
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source))


def allow_private_from_env() -> bool:
    """The private-URL switch from the environment (`MUSICGEN_FT_ALLOW_PRIVATE_URLS`)."""
    return env_flag(ALLOW_PRIVATE_ENV)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, translated, NAT64, 6to4)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in (_NAT64, _COMPATIBLE, _TRANSLATED)):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address, the one policy of every request.

    Loopback, private (RFC 1918, ULA), link-local, cloud metadata (169.254.169.254), CGNAT,
    multicast, reserved and documentation ranges are not public. An IPv6 address that embeds an
    IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64
    `64:ff9b::/96`, 6to4 `2002::/16`) is judged by the IPv4 address it embeds; the local-use
    NAT64 prefix `64:ff9b:1::/48` is never public. A zone suffix (`fe80::1%eth0`) is ignored;
    anything that is not an IP address is not public.
    """
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
            address.split("%", 1)[0]
        )
    except ValueError:
        return False
    if any(ip.version == net.version and ip in net for net in _ALWAYS_REFUSED):
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            ip = embedded
            if any(ip.version == net.version and ip in net for net in _ALWAYS_REFUSED):
                return False
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to for a TCP connection on `port`, sorted, no duplicates.

    The only place names are resolved; tests replace it. Raises OSError (socket.gaierror) or
    UnicodeError when the name cannot be resolved.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _literal(host: str) -> str | None:
    """`host` as an address when it is an IP literal (with or without brackets), else None."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    return host.strip("[]")


def _addresses(host: str, port: int) -> list[str]:
    """The addresses of `host`: itself when it is an IP literal, else what `resolve` answers."""
    literal = _literal(host)
    return [literal] if literal is not None else list(resolve(host, port))


def redact(url: str) -> str:
    """`url` as messages show it: no credentials, no fragment, the query string as `?…`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    tail = "?…" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) + tail


def check_url(
    url: str, *, allow_private: bool = False, allow_http: bool = False, field: str = "url"
) -> None:
    """Refuse a URL this program may not fetch or post to. Resolves the host; sends nothing.

    Args:
        url: The URL a user gave (or a redirect pointed to).
        allow_private: The private-URL switch: admit hosts with non-public addresses, and plain
            http:// to them (self-hosters with internal buckets, tests on 127.0.0.1).
        allow_http: Admit plain http:// to public hosts too.
        field: The input the URL came from, named in the message.

    Raises:
        UnsafeUrlError: one line naming the field, the problem and the fix.
    """
    shown = redact(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrlError(field, f"{shown} is not a valid URL (bad host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrlError(field, f"{shown}: only https:// URLs are accepted")
    host = parts.hostname
    if not host:
        raise UnsafeUrlError(field, f"{shown} has no host name; give an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrlError(
            field,
            f"{shown}: credentials in the URL are not accepted; use a pre-signed URL instead",
        )
    port = port or (443 if scheme == "https" else 80)
    try:
        addresses = _addresses(host, port)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrlError(
            field, f"{shown}: cannot resolve host {host!r} ({exc}); check the URL"
        ) from None
    if not addresses:
        raise UnsafeUrlError(field, f"{shown}: host {host!r} has no address; check the URL")
    blocked = [a for a in addresses if not is_public_address(a)]
    if blocked and not allow_private:
        verb = "is" if _literal(host) is not None else "resolves to"
        raise UnsafeUrlError(
            field,
            f"{shown}: host {host} {verb} a non-public address ({blocked[0]}); refusing it; "
            f"{PRIVATE_HINT}",
        )
    if scheme == "http" and not allow_http and not (blocked and allow_private):
        raise UnsafeUrlError(
            field,
            f"{shown}: plain http:// is not accepted; use https:// (plain http is admitted only "
            "for private hosts with the private-URL switch, --allow_private_urls)",
        )


class GuardedBackend(httpcore.NetworkBackend):
    """An httpcore network backend that connects only to addresses the policy admits.

    `connect_tcp` resolves the host with `resolve` (once, here), refuses it unless every address
    is public (or `allow_private`), and connects to the checked IP through httpcore's own
    SyncBackend. httpcore then starts TLS with the original host name, so SNI, certificate
    checks and the Host header are unchanged.
    """

    def __init__(self, *, allow_private: bool = False, field: str = "url") -> None:
        self.allow_private = allow_private
        self.field = field
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = _addresses(host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve host {host!r} ({exc})") from None
        if not addresses:
            raise httpcore.ConnectError(f"host {host!r} has no address")
        if not self.allow_private:
            for address in addresses:
                if not is_public_address(address):
                    raise UnsafeUrlError(
                        self.field,
                        f"host {host} resolved to a non-public address ({address}) when "
                        f"connecting; refusing it; {PRIVATE_HINT}",
                    )
        error: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used by guarded connections")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's HTTP transport with its connection pool on a `GuardedBackend` (no proxies)."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        field: str = "url",
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        ssl_context = (
            verify
            if isinstance(verify, ssl.SSLContext)
            else httpx.create_ssl_context(verify=verify)
        )
        super().__init__(verify=ssl_context, trust_env=False)
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            network_backend=GuardedBackend(allow_private=allow_private, field=field),
        )


def guarded_client(
    *,
    allow_private: bool,
    timeout: httpx.Timeout | float,
    transport: httpx.BaseTransport | None = None,
    field: str = "url",
) -> httpx.Client:
    """An httpx client whose connections are checked at connect time; redirects not followed.

    Environment proxies and .netrc are ignored (a proxy would resolve the target itself). Check
    the URL with `check_url` first for a clear message; the client is the second line.

    Args:
        allow_private: The private-URL switch.
        timeout: httpx timeout (seconds or an httpx.Timeout).
        transport: Use this transport instead (tests: httpx.MockTransport); no connect check.
        field: The input named when a connection is refused.
    """
    return httpx.Client(
        transport=transport or GuardedTransport(allow_private=allow_private, field=field),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


def download(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    sha256: str | None = None,
    allow_private: bool = False,
    allow_http: bool = False,
    field: str = "url",
    transport: httpx.BaseTransport | None = None,
    connect_timeout: float = 15.0,
    read_timeout: float = 60.0,
    max_redirects: int = 5,
) -> Path:
    """Download `url` to `dest`, guarded, capped and (optionally) verified. Returns `dest`.

    Redirects are followed by hand, at most `max_redirects`, each hop checked by `check_url` and
    again at connect time. The body streams to `dest.part`, which is renamed to `dest` only when
    complete (and its SHA-256 matches); on any failure nothing is left behind.

    Args:
        url: http(s) URL.
        dest: File to write (its folder is created).
        max_bytes: Largest body accepted (declared or streamed).
        sha256: Expected hex SHA-256 of the body; a mismatch deletes it and fails.
        allow_private: The private-URL switch (see `check_url`).
        allow_http: Admit plain http:// to public hosts.
        field: The input the URL came from, named in every message.
        transport: An httpx transport to use instead of the network (tests).
        connect_timeout: Seconds to connect.
        read_timeout: Seconds without a byte before giving up.
        max_redirects: Redirects followed before giving up.

    Raises:
        UnsafeUrlError: a hop is refused by the policy.
        DownloadError: timeout, HTTP error status, too many redirects, too large, truncated,
            checksum mismatch, connection failure.
    """
    timeout = httpx.Timeout(
        connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
    )
    current = url
    with guarded_client(
        allow_private=allow_private, timeout=timeout, transport=transport, field=field
    ) as client:
        for _hop in range(max_redirects + 1):
            check_url(current, allow_private=allow_private, allow_http=allow_http, field=field)
            try:
                with client.stream(
                    "GET", current, headers={"accept-encoding": "identity"}
                ) as response:
                    if response.status_code in _REDIRECTS:
                        location = response.headers.get("location")
                        if not location:
                            raise DownloadError(
                                field, f"{redact(current)} redirected without a Location"
                            )
                        current = urljoin(current, location)
                        continue
                    if response.status_code != 200:
                        raise DownloadError(
                            field,
                            f"{redact(current)} answered HTTP {response.status_code} "
                            f"{response.reason_phrase}; check that the URL is public and still "
                            "valid",
                        )
                    return _save(response, current, dest, max_bytes, sha256, field)
            except httpx.TimeoutException as exc:
                raise DownloadError(
                    field,
                    f"{redact(current)} did not answer in time ({type(exc).__name__}); check "
                    "the URL or try again later",
                ) from None
            except httpx.HTTPError as exc:
                raise DownloadError(
                    field,
                    f"downloading {redact(current)} failed: {type(exc).__name__}: {exc}",
                ) from None
    raise DownloadError(
        field, f"{redact(url)} redirected more than {max_redirects} times; give the final URL"
    )


def _save(
    response: httpx.Response,
    url: str,
    dest: Path,
    max_bytes: int,
    sha256: str | None,
    field: str,
) -> Path:
    declared = response.headers.get("content-length")
    total = int(declared) if declared and declared.isdigit() else None
    if total is not None and total > max_bytes:
        raise DownloadError(field, _too_large(url, total, max_bytes))
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    received = 0
    started = time.monotonic()
    try:
        with part.open("wb") as handle, Progress("download", total, unit="B") as progress:
            for block in response.iter_bytes(_BLOCK):
                received += len(block)
                if received > max_bytes:
                    raise DownloadError(field, _too_large(url, received, max_bytes))
                handle.write(block)
                digest.update(block)
                progress.update(len(block))
        encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
        wire = response.num_bytes_downloaded if encoded else received
        if total is not None and wire != total:
            raise DownloadError(
                field,
                f"{redact(url)}: the download stopped after {wire} of {total} bytes; try again",
            )
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise DownloadError(
                field,
                f"{redact(url)}: SHA-256 {digest.hexdigest()} does not match the expected "
                f"{sha256}; the file was deleted",
            )
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)
    logger.info(
        "downloaded %s (%.1f MB in %.1f s)",
        redact(url),
        received / 1e6,
        time.monotonic() - started,
    )
    return dest


def _too_large(url: str, size: int, max_bytes: int) -> str:
    return (
        f"{redact(url)} is larger than the {max_bytes / 1e9:.1f} GB limit "
        f"({size / 1e9:.1f} GB or more); split it or raise the limit"
    )
