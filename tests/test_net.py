"""musicgen_ft.net: the address policy, the connect-time check, the downloader, and the issue's
acceptance: weights, dataset, labels and webhook URLs that reach loopback are refused with one
clear line and the local server sees nothing, unless the private-URL switch is on.

Only servers started here on loopback are ever connected to: name resolution is stubbed
(`net.resolve`), the "public" host `cdn.example` is answered in-process, and every TCP connect is
asserted to go to a loopback address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from serving_support import wait_until

from musicgen_ft import net
from musicgen_ft.errors import DatasetError, DownloadError, FineTuneError, UnsafeUrlError
from musicgen_ft.net import check_url, download, guarded_client, is_public_address

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = b"pretend trained_model.tar\n" * 200
PUBLIC = "93.184.216.34"  # what stubbed public names resolve to; never connected to


class _Server:
    """Plain HTTP on a loopback address; records every connection and request."""

    def __init__(self, family: socket.AddressFamily = socket.AF_INET, host: str = "127.0.0.1"):
        self.connections = 0
        self.requests: list[tuple[str, str, str]] = []  # method, path, Host header
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(("GET", self.path, self.headers.get("host", "")))
                if self.path.startswith("/loop"):
                    self.send_response(302)
                    self.send_header("Location", "/loop")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, body = (404, b"no") if self.path.startswith("/missing") else (200, PAYLOAD)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                server.requests.append(("POST", self.path, self.headers.get("host", "")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Httpd(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                server.connections += 1
                super().process_request(request, client_address)

        self.httpd = Httpd((host, 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.host = f"[{host}]" if ":" in host else host
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "/x.tar", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    @property
    def untouched(self) -> bool:
        return self.connections == 0 and not self.requests

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every TCP connection a test makes goes to loopback, or the test fails."""
    connect = httpcore.SyncBackend.connect_tcp

    def checked(self: httpcore.SyncBackend, host: str, port: int, **kwargs: Any) -> Any:
        assert ipaddress.ip_address(host).is_loopback, f"test tried to connect to {host}"
        return connect(self, host, port, **kwargs)

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", checked)
    monkeypatch.delenv(net.ALLOW_PRIVATE_ENV, raising=False)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture
def server6() -> Iterator[_Server]:
    try:
        srv = _Server(socket.AF_INET6, "::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here ({exc})")
    yield srv
    srv.close()


Answer = list[str] | Callable[[], list[str]]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, Answer]:
    """`net.resolve` from a table (a list, or a callable for answers that change)."""
    table: dict[str, Answer] = {}

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"unknown host {host} (stubbed resolver)")
        answer = table[host]
        return answer() if callable(answer) else list(answer)

    monkeypatch.setattr(net, "resolve", resolve)
    return table


@pytest.fixture
def front(monkeypatch: pytest.MonkeyPatch, dns: dict[str, Answer]) -> dict[str, str]:
    """`cdn.example` plays an allowed public host: it resolves to a public address and its
    requests are answered here with a redirect to `front[host]`, never sent; requests to other
    hosts go through the real guarded transport."""
    redirects: dict[str, str] = {}
    real = net.GuardedTransport

    class Front(httpx.BaseTransport):
        def __init__(self, **kwargs: Any) -> None:
            self.inner = real(**kwargs)

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.host in redirects:
                return httpx.Response(302, headers={"location": redirects[request.url.host]})
            return self.inner.handle_request(request)

        def close(self) -> None:
            self.inner.close()

    monkeypatch.setattr(net, "GuardedTransport", Front)
    dns["cdn.example"] = [PUBLIC]
    return redirects


# --- the address policy ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.1.1",
        "169.254.169.254",
        "fe80::1",
        "fe80::1%eth0",
        "100.64.0.1",
        "100.127.255.254",
        "fc00::1",
        "fd00:ec2::254",
        "224.0.0.1",
        "ff02::1",
        "0.0.0.0",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "64:ff9b::10.0.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::808:808",
        "2002:7f00:1::",
        "2002:a00:1::",
        "2002:a9fe:a9fe::1",
        "2001:db8::1",
        "192.0.2.1",
        "255.255.255.255",
        "not an address",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert is_public_address(address) is False


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "2001:4860:4860::8888", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(address) is True


# --- check_url ------------------------------------------------------------------------------


def test_check_url_rules(dns: dict[str, Answer]) -> None:
    dns["files.example.com"] = [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"]
    dns["mixed.example.com"] = [PUBLIC, "10.0.0.8"]
    check_url("https://files.example.com/d.zip")
    check_url("http://files.example.com/d.zip", allow_http=True)
    check_url("http://10.0.0.7:8080/d.zip", allow_private=True)
    for url, message in [
        ("ftp://files.example.com/d.zip", "only https://"),
        ("file:///etc/passwd", "only https://"),
        ("/etc/passwd", "only https://"),
        ("https:///d.zip", "no host"),
        ("https://user:pw@files.example.com/d.zip", "credentials"),
        ("https://files.example.com:99999/d.zip", "not a valid URL"),
        ("https://nowhere.example.com/d.zip", "cannot resolve"),
        ("https://mixed.example.com/d.zip", r"non-public address \(10\.0\.0\.8\)"),
        ("https://[::ffff:127.0.0.1]/d.zip", "non-public address"),
        ("http://files.example.com/d.zip", "plain http:// is not accepted"),
    ]:
        with pytest.raises(UnsafeUrlError, match=message):
            check_url(url)
    with pytest.raises(UnsafeUrlError, match="plain http://"):  # the switch is for private hosts
        check_url("http://files.example.com/d.zip", allow_private=True)


def test_a_refusal_is_one_line_naming_field_problem_and_fix(dns: dict[str, Answer]) -> None:
    dns["bucket.internal"] = ["10.1.2.3"]
    with pytest.raises(UnsafeUrlError) as info:
        check_url("https://bucket.internal/d.zip?X-Amz-Signature=s3cr3t", field="dataset_path")
    text = str(info.value)
    assert info.value.field == "dataset_path" and isinstance(info.value, FineTuneError)
    assert text.startswith("dataset_path: https://bucket.internal/d.zip?…: ")
    assert "non-public address (10.1.2.3)" in text and "--allow_private_urls" in text
    assert "s3cr3t" not in text and "\n" not in text


# --- the connect-time check -----------------------------------------------------------------


def _rebinding(calls: list[int]) -> Callable[[], list[str]]:
    """Public on the 1st, 3rd, ... lookup (the checks), loopback on the others (connects)."""

    def answer() -> list[str]:
        calls.append(1)
        return [PUBLIC] if len(calls) % 2 else ["127.0.0.1"]

    return answer


def test_dns_rebinding_is_refused_before_a_request_is_sent(
    server: _Server, dns: dict[str, Answer], tmp_path: Path
) -> None:
    calls: list[int] = []
    dns["rebind.example"] = _rebinding(calls)
    with pytest.raises(UnsafeUrlError, match=r"non-public address \(127\.0\.0\.1\) when connect"):
        download(
            server.url(host="rebind.example"),
            tmp_path / "x.tar",
            max_bytes=1 << 20,
            allow_http=True,  # so that a missing connect check would reach the server
        )
    assert len(calls) == 2  # checked, then resolved once more at connect: refused
    assert server.untouched
    assert not list(tmp_path.iterdir())


def test_the_guarded_client_checks_at_connect(server: _Server, dns: dict[str, Answer]) -> None:
    dns["hook.example"] = ["127.0.0.1"]
    with (
        guarded_client(allow_private=False, timeout=2.0, field="webhook") as client,
        pytest.raises(UnsafeUrlError, match=r"^webhook: host hook\.example resolved to a non"),
    ):
        client.post(server.url("/hook", host="hook.example"), content=b"{}")
    assert server.untouched


def test_the_checked_address_is_used_and_the_host_name_kept(
    server: _Server, dns: dict[str, Answer], tmp_path: Path
) -> None:
    dns["files.internal"] = ["127.0.0.1"]
    path = download(
        server.url(host="files.internal"), tmp_path / "x.tar", max_bytes=1 << 20, allow_private=True
    )
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("GET", "/x.tar", f"files.internal:{server.port}")]


# --- download -------------------------------------------------------------------------------


def test_download_verifies_sha256(server: _Server, tmp_path: Path) -> None:
    good = hashlib.sha256(PAYLOAD).hexdigest()
    dest = tmp_path / "d" / "x.tar"
    assert download(server.url(), dest, max_bytes=1 << 20, sha256=good, allow_private=True) == dest
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="does not match"):
        download(server.url(), tmp_path / "y.tar", max_bytes=1 << 20, sha256="0" * 64,
                 allow_private=True)  # fmt: skip
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["d", "x.tar"]


def test_download_errors_are_one_line(server: _Server, tmp_path: Path) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/missing", {}, r"^weights: http://127\.0\.0\.1:\d+/missing answered HTTP 404"),
        ("/x.tar", {"max_bytes": 100}, "larger than the"),
        ("/loop", {"max_redirects": 2}, "redirected more than 2 times; give the final URL"),
    ]
    for path, extra, message in cases:
        kwargs: dict[str, Any] = {"max_bytes": 1 << 20, "allow_private": True, **extra}
        with pytest.raises(DownloadError, match=message) as info:
            download(server.url(path), tmp_path / "x", field="weights", **kwargs)
        assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())


def test_download_through_an_injected_transport(dns: dict[str, Answer], tmp_path: Path) -> None:
    dns["cdn.example"] = [PUBLIC]
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=PAYLOAD)

    path = download(
        "https://cdn.example/x.tar?sig=1",
        tmp_path / "x.tar",
        max_bytes=1 << 20,
        transport=httpx.MockTransport(answer),
    )
    assert path.read_bytes() == PAYLOAD and seen == ["https://cdn.example/x.tar?sig=1"]


# --- acceptance: loopback targets refused everywhere, unless the switch is on ---------------

CASES = ["loopback-v4", "loopback-v6", "name-to-loopback", "redirect-to-loopback"]


@pytest.fixture(params=CASES)
def target(
    request: pytest.FixtureRequest,
    server: _Server,
    dns: dict[str, Answer],
    front: dict[str, str],
) -> tuple[str, _Server]:
    """A URL that reaches a loopback server, and that server."""
    case = request.param
    if case == "loopback-v6":
        srv: _Server = request.getfixturevalue("server6")
        return srv.url(), srv
    if case == "name-to-loopback":
        dns["weights.example"] = ["127.0.0.1"]
        return server.url(host="weights.example"), server
    if case == "redirect-to-loopback":
        front["cdn.example"] = server.url()
        return "https://cdn.example/x.tar", server
    return server.url(), server


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_predict_refuses_weights_urls_to_loopback(
    target: tuple[str, _Server],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from inference.cli import main

    url, srv = target
    monkeypatch.setenv("MUSICGEN_FT_CACHE", str(tmp_path / "cache"))
    assert main(["--weights", url, "--output", str(tmp_path / "out.wav")]) != 0
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("error: weights: ") and "non-public address" in line
    assert "--allow_private_urls" in line
    assert srv.untouched
    assert not (tmp_path / "out.wav").exists()


def test_weights_download_with_the_private_url_switch(
    target: tuple[str, _Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference.loading import fetch_weights

    url, srv = target
    monkeypatch.setenv("MUSICGEN_FT_CACHE", str(tmp_path / "cache"))
    assert fetch_weights(url, allow_private=True).read_bytes() == PAYLOAD
    assert [r[0] for r in srv.requests] == ["GET"]


def test_the_environment_switch_and_its_override(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference.loading import fetch_weights

    monkeypatch.setenv("MUSICGEN_FT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(net.ALLOW_PRIVATE_ENV, "yes")
    with pytest.raises(UnsafeUrlError, match="non-public"):
        fetch_weights(server.url("/a.tar"), allow_private=False)
    assert server.untouched
    assert fetch_weights(server.url("/a.tar")).read_bytes() == PAYLOAD


def test_predict_py_prints_one_line_and_sends_nothing(server: _Server, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != net.ALLOW_PRIVATE_ENV}
    env["MUSICGEN_FT_CACHE"] = str(tmp_path / "cache")
    done = subprocess.run(
        [sys.executable, "predict.py", "--weights", server.url(), "--output", str(tmp_path / "o")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    line = _one_error_line(done.stderr)
    assert line.startswith("error: weights: http://127.0.0.1:") and "non-public" in line
    assert server.untouched


@pytest.mark.parametrize("field", ["dataset_path", "labels_file"])
def test_dataset_and_labels_urls_to_loopback_are_refused(
    target: tuple[str, _Server], field: str, tmp_path: Path
) -> None:
    from preprocessing.fetch import FetchSettings, fetch

    url, srv = target
    with pytest.raises(DatasetError) as info:
        fetch(url, tmp_path / "fetch", field=field)
    assert str(info.value).startswith(f"{field}: ") and "\n" not in str(info.value)
    assert "non-public address" in str(info.value) and "--allow_private_urls" in str(info.value)
    assert srv.untouched
    got = fetch(url, tmp_path / "fetch", FetchSettings(allow_private=True), field=field)
    assert got.read_bytes() == PAYLOAD and len(srv.requests) == 1


def _deliver(url: str, *, allow_private: bool) -> None:
    from serving.signing import new_secret
    from serving.webhooks import RetryPolicy, Snapshot, WebhookHub

    snap = Snapshot({"id": "t1", "status": "succeeded"}, url, ("completed",), new_secret())
    hub = WebhookHub(lambda _: snap, allow_private=allow_private, retry=RetryPolicy(0.01, 2))
    try:
        hub.emit("t1", "completed")
        wait_until(hub.idle, 10, "the webhook channel to finish")
    finally:
        hub.close()


def test_webhooks_to_loopback_are_not_sent(target: tuple[str, _Server]) -> None:
    url, srv = target
    _deliver(url, allow_private=False)
    assert srv.untouched
    _deliver(url, allow_private=True)
    if url.startswith("https://cdn.example"):
        assert srv.untouched  # webhooks never follow redirects
    else:
        assert [r[0] for r in srv.requests] == ["POST"]


def test_a_rebinding_webhook_host_is_refused_at_connect(
    server: _Server, dns: dict[str, Answer]
) -> None:
    calls: list[int] = []
    dns["rebind.example"] = _rebinding(calls)
    _deliver(f"https://rebind.example:{server.port}/hook", allow_private=False)
    assert len(calls) == 4  # two attempts: each checked, then refused at connect
    assert server.untouched
