"""The files API through the official `replicate` client and raw HTTP, against a live
`musicgen-ft serve` on 127.0.0.1 (fast stand-in trainer): uploads streamed to disk, scoped to
their token, and usable as training inputs by their own URL."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from replicate.exceptions import ReplicateError
from serving_support import (
    OTHER_TOKEN,
    TOKEN,
    Server,
    auth,
    client,
    wait_until,
    write_fake_trainer,
)

from serving.app import create_app
from serving.config import ServerConfig

DEST = "alice/from-files"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serve")
    fake = write_fake_trainer(tmp)
    srv = Server(tmp, extra=["--trainer", f"{sys.executable} {fake}", "--page_size", "2"])
    srv.start()
    client(srv).models.create("alice", "from-files", visibility="private", hardware="cpu")
    yield srv
    srv.stop()


def stored(server: Server) -> set[str]:
    root = server.data_dir / "files"
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


def test_the_official_client_uploads_lists_downloads_and_deletes(
    server: Server, tmp_path: Path
) -> None:
    c = client(server)
    song = tmp_path / "my song.wav"
    song.write_bytes(os.urandom(300_000))
    by_path = c.files.create(song)
    with song.open("rb") as f:
        by_handle = c.files.create(f, metadata={"take": 2})
    for up in (by_path, by_handle):
        assert up.name == "my_song.wav" and up.size == 300_000
        assert up.content_type == "audio/x-wav"
        assert up.checksums["sha256"] == hashlib.sha256(song.read_bytes()).hexdigest()
        assert up.urls["get"] == f"{server.url}/v1/files/{up.id}"
    assert by_handle.metadata == {"take": 2} and by_path.metadata == {}
    assert c.files.get(by_path.id).checksums == by_path.checksums
    download = httpx.get(f"{up.urls['get']}/download", headers=auth(TOKEN))
    assert download.status_code == 200 and download.content == song.read_bytes()
    assert download.headers["content-type"] == "audio/x-wav"

    third = c.files.create(song)
    ids = [f.id for f in c.files.list()]  # the client reads the first page
    assert ids == [third.id, by_handle.id]  # newest first, page_size 2
    page = httpx.get(f"{server.url}/v1/files", headers=auth(TOKEN)).json()
    older = httpx.get(page["next"], headers=auth(TOKEN)).json()
    assert [f["id"] for f in older["results"]] == [by_path.id] and older["next"] is None

    other = client(server, OTHER_TOKEN)
    assert other.files.list() == []
    for call in (
        lambda: other.files.get(by_path.id),
        lambda: other.files.delete(by_path.id),
    ):
        with pytest.raises(ReplicateError) as info:
            call()
        assert info.value.status == 404
    theirs = httpx.get(f"{by_path.urls['get']}/download", headers=auth(OTHER_TOKEN))
    assert theirs.status_code == 404
    assert httpx.get(by_path.urls["get"]).status_code == 401

    assert by_path.id in stored(server)
    assert c.files.delete(by_path.id) is True
    assert by_path.id not in stored(server)
    with pytest.raises(ReplicateError) as info:
        c.files.get(by_path.id)
    assert info.value.status == 404


def test_the_new_endpoints_need_a_token(server: Server) -> None:
    routes = [
        ("POST", "/v1/files"),
        ("GET", "/v1/files"),
        ("GET", "/v1/files/x"),
        ("GET", "/v1/files/x/download"),
        ("DELETE", "/v1/files/x"),
        ("POST", "/v1/predictions"),
        ("GET", "/v1/predictions"),
        ("GET", "/v1/predictions/x"),
        ("POST", "/v1/predictions/x/cancel"),
        ("GET", "/v1/predictions/x/output/output.wav"),
        ("POST", "/v1/models/musicgen-ft/musicgen-debug/predictions"),
        ("GET", "/v1/trainings/x/output/curves/loss.png"),
    ]
    for method, path in routes:
        for headers in ({}, auth("wrong")):
            r = httpx.request(method, server.url + path, headers=headers)
            assert r.status_code == 401, (method, path, r.text)


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_large_upload_streams_to_disk_not_memory(server: Server) -> None:
    assert server.proc is not None
    size = 160 << 20
    boundary = "b0undary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
            f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        block = b"\x5a" * (1 << 20)
        for _ in range(size >> 20):
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    before = _vm_hwm_kib(server.proc.pid)
    r = httpx.post(
        f"{server.url}/v1/files",
        content=body(),
        headers={**auth(TOKEN), "content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=120,
    )
    assert r.status_code == 201, r.text
    assert r.json()["size"] == size
    assert r.json()["checksums"]["sha256"] == hashlib.sha256(b"\x5a" * size).hexdigest()
    grown_mib = (_vm_hwm_kib(server.proc.pid) - before) / 1024
    assert grown_mib < 48, f"the server's peak memory grew by {grown_mib:.0f} MiB"
    assert client(server).files.delete(r.json()["id"])


def test_uploads_over_the_limit_and_malformed_ones_are_refused(tmp_path: Path) -> None:
    srv = Server(tmp_path, extra=["--max_file_mb", "1"]).start()
    try:
        url = f"{srv.url}/v1/files"
        too_big = os.urandom((1 << 20) + 1)
        r = httpx.post(url, files={"content": ("a.zip", too_big)}, headers=auth(TOKEN))
        assert r.status_code == 413 and "larger than 1048576 bytes" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no content-length: refused while streaming
            yield b'--x\r\nContent-Disposition: form-data; name="content"; filename="a"\r\n\r\n'
            for _ in range(3):
                yield os.urandom(1 << 19)

        r = httpx.post(
            url,
            content=chunks(),
            headers={**auth(TOKEN), "content-type": "multipart/form-data; boundary=x"},
        )
        assert r.status_code == 413, r.text
        cases: list[tuple[dict[str, Any], str]] = [
            ({"json": {"content": "x"}}, "multipart/form-data"),
            ({"files": {"file": ("a.zip", b"x")}}, "no part named 'content'"),
            ({"files": {"content": ("a.zip", b"x")}, "data": {"metadata": "{no"}}, "metadata"),
        ]
        for kwargs, message in cases:
            r = httpx.post(url, headers=auth(TOKEN), **kwargs)
            assert r.status_code == 400 and message in r.json()["detail"], r.text
        assert stored(srv) == set()  # nothing half-written is left behind
        assert httpx.post(url, files={"content": ("a", b"x")}).status_code == 401
        r = httpx.post(url, files={"content": ("../../etc/.x y.zip", b"ok")}, headers=auth(TOKEN))
        assert r.status_code == 201 and r.json()["name"] == "x_y.zip"
    finally:
        srv.stop()


def test_a_training_reads_uploads_named_by_their_url(server: Server, tmp_path: Path) -> None:
    c = client(server)
    archive = tmp_path / "ok.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))
    labels = tmp_path / "labels.csv"
    labels.write_text("source,description\nsong1.wav,calm\n")
    trainer = c.models.list().results[0]
    with archive.open("rb") as data, labels.open("rb") as reviewed:
        training = c.trainings.create(  # the client uploads both through POST /v1/files
            model=trainer.id,
            version=trainer.latest_version.id,
            input={"dataset_path": data, "labels_file": reviewed, "model_version": "debug"},
            destination=DEST,
        )
    shown = training.input["dataset_path"]
    assert shown.startswith(f"{server.url}/v1/files/")
    assert training.input["labels_file"].startswith(f"{server.url}/v1/files/")
    wait_until(lambda: (training.reload(), training.status == "succeeded")[1], 30, "training")
    data_id, labels_id = shown.rsplit("/", 1)[1], training.input["labels_file"].rsplit("/", 1)[1]
    files = server.data_dir.resolve() / "files"
    assert f"--dataset_path={files / data_id / 'ok.zip'}" in training.logs
    assert f"--labels_file={files / labels_id / 'labels.csv'}" in training.logs
    assert training.input["dataset_path"] == shown  # still shown as the URL

    model, version = trainer.id, trainer.latest_version.id
    url = f"{server.url}/v1/models/{model}/versions/{version}/trainings"
    theirs = client(server, OTHER_TOKEN).files.create(archive)
    for dataset in (theirs.urls["get"], f"{server.url}/v1/files/{'z' * 26}"):
        body = {"destination": DEST, "input": {"dataset_path": dataset, "model_version": "debug"}}
        r = httpx.post(url, json=body, headers=auth(TOKEN))
        assert r.status_code == 422 and "no file of yours" in r.json()["detail"], r.text
        assert r.json()["invalid_fields"][0]["field"] == "input.dataset_path"


def test_own_file_urls_need_no_private_url_switch(tmp_path: Path) -> None:
    """In-process app without --allow_private_urls: its own file URLs are accepted (they are
    read from disk), a plain-http URL of the same host is not (it would be fetched)."""
    config = ServerConfig(db=tmp_path / "s.db", data_dir=tmp_path / "d", tokens=(TOKEN,))
    http = TestClient(create_app(config))
    up = http.post("/v1/files", files={"content": ("d.zip", b"PK")}, headers=auth(TOKEN)).json()
    http.post(
        "/v1/models",
        headers=auth(TOKEN),
        json={"owner": "alice", "name": "from-files", "visibility": "private"},
    )
    trainer = http.get("/v1/models", headers=auth(TOKEN)).json()["results"][0]
    url = f"/v1/models/{trainer['owner']}/{trainer['name']}/versions/"
    url += f"{trainer['latest_version']['id']}/trainings"
    for dataset, status in ((up["urls"]["get"], 201), ("http://testserver/d.zip", 422)):
        body = {"destination": DEST, "input": {"dataset_path": dataset, "model_version": "debug"}}
        r = http.post(url, json=body, headers=auth(TOKEN))
        assert r.status_code == status, r.text
    assert r.json()["invalid_fields"][0]["field"] == "input.dataset_path"
