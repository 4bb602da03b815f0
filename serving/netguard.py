"""Refuse URLs that would let an API user reach the server's own network (SSRF).

Datasets and webhooks must be `https://` URLs whose host resolves only to public addresses,
unless the operator started the server with `--allow_private_urls`.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class UnsafeUrlError(ValueError):
    """The URL is malformed or points somewhere the server may not go."""


def resolve_host(host: str) -> list[str]:
    """All addresses `host` resolves to. Tests replace this to avoid touching the network."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def check_url(url: str, *, allow_private: bool) -> None:
    """Raise UnsafeUrlError unless `url` may be fetched or posted to.

    Args:
        url: The URL given by an API user.
        allow_private: The operator's setting: allow http:// and non-public addresses.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise UnsafeUrlError(f"{url!r} is not a valid URL ({exc})") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeUrlError(
            f"{url!r} must be an https:// URL"
            + ("" if allow_private else " (http:// only when the server allows private URLs)")
        )
    if not host:
        raise UnsafeUrlError(f"{url!r} has no host")
    if allow_private:
        return
    try:
        addresses = [str(ipaddress.ip_address(host))]  # a literal address
    except ValueError:
        addresses = []
    try:
        addresses = addresses or resolve_host(host)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrlError(f"cannot resolve the host of {url!r} ({exc})") from None
    if not addresses:
        raise UnsafeUrlError(f"the host of {url!r} has no address")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global or ip.is_multicast:
            raise UnsafeUrlError(
                f"{url!r} resolves to the non-public address {ip}; the server refuses "
                "loopback, private and link-local addresses (operator setting "
                "--allow_private_urls)"
            )
