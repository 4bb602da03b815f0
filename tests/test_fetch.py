"""Fetching datasets: local paths, downloads from a server on 127.0.0.1, and refusals.

Private-address tests never reach a private network: name resolution is stubbed and the
transport is a mock that records (and fails on) any request it should not see.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from musicgen_ft import net
from musicgen_ft.errors import DatasetError
from musicgen_ft.net import is_public_address
from preprocessing.fetch import FetchSettings, download_name, fetch

PAYLOAD = b"PK\x05\x06" + b"\x00" * 18 + b"x" * 5000
LOCAL = FetchSettings(allow_private=True, connect_timeout=2.0, read_timeout=2.0)


class _Handler(BaseHTTPRequestHandler):
    hang = threading.Event()
    hits: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.path.startswith("/data.zip"):
            self._send(200, PAYLOAD)
        elif self.path == "/redirect":
            self._redirect("/data.zip?sig=secret")
        elif self.path == "/loop":
            self._redirect("/loop")
        elif self.path == "/chunked-big":
            self.send_response(200)
            self.end_headers()
            for _ in range(20):
                self.wfile.write(b"y" * 1000)
        elif self.path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "10000")
            self.end_headers()
            self.wfile.write(b"z" * 100)
        elif self.path == "/hang":
            self.hang.wait(10)
        else:
            self._send(404, b"not found")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, to: str) -> None:
        self.send_response(302)
        self.send_header("Location", to)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    _Handler.hang.set()
    httpd.shutdown()
    httpd.server_close()


class _Recorder(httpx.MockTransport):
    """A transport that answers from a table and records every request it is asked to send."""

    def __init__(self, answers: dict[str, httpx.Response]) -> None:
        self.seen: list[str] = []

        def handle(request: httpx.Request) -> httpx.Response:
            self.seen.append(str(request.url))
            host = request.url.host
            if host not in answers:
                raise AssertionError(f"request to {host} should never have been sent")
            return answers[host]

        super().__init__(handle)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Resolve names from a table; any other lookup fails the test (no real DNS, no traffic)."""
    table: dict[str, str] = {}

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise AssertionError(f"unexpected DNS lookup of {host}")
        return [table[host]]

    monkeypatch.setattr(net, "resolve", resolve)
    return table


def _empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def _nothing_written_outside(root: Path, allowed: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert path.is_relative_to(allowed), f"{path} written outside {allowed}"


def test_local_path_is_returned_resolved(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    assert fetch(str(folder), tmp_path / "fetch") == folder.resolve()
    assert not (tmp_path / "fetch").exists()


def test_missing_local_path_says_what_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"does not exist; give an HTTPS URL"):
        fetch(str(tmp_path / "nope.zip"), tmp_path / "fetch")


def test_download_streams_to_the_work_dir_and_strips_the_query(server: str, tmp_path: Path) -> None:
    path = fetch(f"{server}/data.zip?sig=abc", tmp_path / "fetch", LOCAL)
    assert path == tmp_path / "fetch" / "data.zip"
    assert path.read_bytes() == PAYLOAD
    assert not list((tmp_path / "fetch").glob("*.part"))


def test_redirects_are_followed_and_rechecked(server: str, tmp_path: Path) -> None:
    path = fetch(f"{server}/redirect", tmp_path / "fetch", LOCAL)
    assert path.read_bytes() == PAYLOAD


def test_404_is_a_clear_error(server: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"answered HTTP 404 Not Found; check that the URL"):
        fetch(f"{server}/missing.zip", tmp_path / "fetch", LOCAL)
    _nothing_written_outside(tmp_path, tmp_path / "fetch")
    assert _empty(tmp_path / "fetch")


def test_a_server_that_never_answers_times_out(server: str, tmp_path: Path) -> None:
    settings = FetchSettings(allow_private=True, connect_timeout=1.0, read_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(DatasetError, match=r"did not answer in time"):
        fetch(f"{server}/hang", tmp_path / "fetch", settings)
    assert time.monotonic() - started < 5


def test_redirect_loop_is_bounded(server: str, tmp_path: Path) -> None:
    settings = FetchSettings(allow_private=True, max_redirects=3, read_timeout=2.0)
    with pytest.raises(DatasetError, match=r"redirected more than 3 times"):
        fetch(f"{server}/loop", tmp_path / "fetch", settings)


def test_declared_size_over_the_cap_is_refused_before_reading(server: str, tmp_path: Path) -> None:
    settings = FetchSettings(allow_private=True, max_bytes=1000, read_timeout=2.0)
    with pytest.raises(DatasetError, match=r"larger than the .* limit"):
        fetch(f"{server}/data.zip", tmp_path / "fetch", settings)
    assert _empty(tmp_path / "fetch")


def test_undeclared_size_over_the_cap_stops_while_streaming(server: str, tmp_path: Path) -> None:
    settings = FetchSettings(allow_private=True, max_bytes=5000, read_timeout=2.0)
    with pytest.raises(DatasetError, match=r"larger than the .* limit"):
        fetch(f"{server}/chunked-big", tmp_path / "fetch", settings)
    assert _empty(tmp_path / "fetch")


def test_truncated_download_is_an_error(server: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"stopped after|failed"):
        fetch(f"{server}/short", tmp_path / "fetch", LOCAL)
    assert _empty(tmp_path / "fetch")


def test_loopback_is_refused_by_default(server: str, tmp_path: Path) -> None:
    before = len(_Handler.hits)
    with pytest.raises(DatasetError, match=r"non-public address \(127\.0\.0\.1\).*--allow_private"):
        fetch(f"{server}/data.zip", tmp_path / "fetch")
    assert len(_Handler.hits) == before


@pytest.mark.parametrize(
    "address", ["10.1.2.3", "192.168.0.10", "169.254.169.254", "100.64.0.1", "fd00:ec2::254"]
)
def test_private_addresses_are_refused_without_traffic(
    address: str, fake_dns: dict[str, str], tmp_path: Path
) -> None:
    fake_dns["bucket.internal.example"] = address
    transport = _Recorder({})
    with pytest.raises(DatasetError, match=r"non-public address"):
        fetch("https://bucket.internal.example/data.zip", tmp_path / "fetch", transport=transport)
    assert transport.seen == []


def test_redirect_to_a_private_address_is_refused(fake_dns: dict[str, str], tmp_path: Path) -> None:
    fake_dns["public.example"] = "93.184.216.34"
    fake_dns["metadata.example"] = "169.254.169.254"
    transport = _Recorder(
        {
            "public.example": httpx.Response(
                302, headers={"Location": "https://metadata.example/latest/meta-data/"}
            )
        }
    )
    with pytest.raises(DatasetError, match=r"metadata\.example resolves to a non-public address"):
        fetch("https://public.example/data.zip", tmp_path / "fetch", transport=transport)
    assert transport.seen == ["https://public.example/data.zip"]
    _nothing_written_outside(tmp_path, tmp_path / "fetch")


def test_public_https_download_through_the_transport(
    fake_dns: dict[str, str], tmp_path: Path
) -> None:
    fake_dns["public.example"] = "93.184.216.34"
    transport = _Recorder({"public.example": httpx.Response(200, content=PAYLOAD)})
    path = fetch("https://public.example/files/My%20Songs.zip", tmp_path / "f", transport=transport)
    assert path.name == "My_Songs.zip" and path.read_bytes() == PAYLOAD


def test_plain_http_to_a_public_host_is_refused(fake_dns: dict[str, str], tmp_path: Path) -> None:
    fake_dns["public.example"] = "93.184.216.34"
    transport = _Recorder({})
    with pytest.raises(DatasetError, match=r"plain http:// is not accepted; use https://"):
        fetch("http://public.example/data.zip", tmp_path / "fetch", transport=transport)
    with pytest.raises(DatasetError, match=r"plain http://"):
        fetch(
            "http://public.example/data.zip",
            tmp_path / "fetch",
            FetchSettings(allow_private=True),
            transport=transport,
        )
    assert transport.seen == []


def test_redirect_from_https_to_plain_http_is_refused(
    fake_dns: dict[str, str], tmp_path: Path
) -> None:
    fake_dns["public.example"] = "93.184.216.34"
    transport = _Recorder(
        {"public.example": httpx.Response(301, headers={"Location": "http://public.example/x"})}
    )
    with pytest.raises(DatasetError, match=r"plain http://"):
        fetch("https://public.example/data.zip", tmp_path / "fetch", transport=transport)
    assert transport.seen == ["https://public.example/data.zip"]


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.zip", "file:///etc/passwd", "https://user:pw@example.com/a.zip"]
)
def test_other_schemes_and_credentials_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"only https://|credentials"):
        fetch(url, tmp_path / "fetch", transport=_Recorder({}))


def test_unresolvable_host_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(net, "resolve", fail)
    with pytest.raises(DatasetError, match=r"cannot resolve host 'nowhere\.example'"):
        fetch("https://nowhere.example/a.zip", tmp_path / "fetch", transport=_Recorder({}))


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("0.0.0.0", False),
        ("::ffff:10.0.0.1", False),
        ("224.0.0.1", False),
        ("fe80::1%eth0", False),
        ("not an ip", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_download_name_is_safe() -> None:
    sneaky = download_name("https://x.example/a/..%2F..%2Fetc%2Fpasswd")
    assert "/" not in sneaky and not sneaky.startswith(".") and sneaky.endswith("etc_passwd")
    assert download_name("https://x.example/") == "download"
    assert download_name("https://x.example/.hidden.zip") == "hidden.zip"
