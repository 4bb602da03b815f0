"""The trainings API through the official `replicate` client and raw HTTP, against a live
`musicgen-ft serve` on 127.0.0.1 whose trainer is a fast stand-in (tests of the real trainer
are in test_serving_e2e.py)."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from replicate.exceptions import ReplicateError
from replicate.webhook import Webhooks
from serving_support import (
    OTHER_TOKEN,
    TOKEN,
    Server,
    WebhookReceiver,
    auth,
    client,
    iter_pages,
    processes_of_group,
    training_pgid,
    wait_until,
    write_fake_trainer,
)

from musicgen_ft import net
from serving.app import create_app
from serving.config import ServerConfig

TERMINAL = ("succeeded", "failed", "canceled")
DEST = "alice/tuned"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serve")
    fake = write_fake_trainer(tmp)
    srv = Server(tmp, extra=["--trainer", f"{sys.executable} {fake}", "--page_size", "2"])
    srv.start()
    c = client(srv)
    c.models.create("alice", "tuned", visibility="private", hardware="gpu")
    yield srv
    srv.stop()


def trainer_ref(c: Any) -> tuple[str, str]:
    model = c.models.list().results[0]
    return model.id, model.latest_version.id


def start(c: Any, dataset: str = "ok.zip", **params: Any) -> Any:
    model, version = trainer_ref(c)
    return c.trainings.create(
        model=model,
        version=version,
        destination=DEST,
        input={"dataset_path": f"http://127.0.0.1:1/{dataset}", "model_version": "debug"},
        **params,
    )


def finish(training: Any, timeout: float = 30) -> Any:
    def done() -> bool:
        training.reload()
        return training.status in TERMINAL

    wait_until(done, timeout, f"training {training.id} to end", every=0.2)
    return training


def test_every_endpoint_needs_a_token(server: Server) -> None:
    routes = [
        ("GET", "/v1/models"),
        ("POST", "/v1/models"),
        ("GET", "/v1/models/a/b"),
        ("GET", "/v1/models/a/b/versions"),
        ("GET", "/v1/models/a/b/versions/v"),
        ("GET", "/v1/models/a/b/versions/v/weights"),
        ("POST", "/v1/models/a/b/versions/v/trainings"),
        ("GET", "/v1/trainings"),
        ("GET", "/v1/trainings/x"),
        ("POST", "/v1/trainings/x/cancel"),
        ("GET", "/v1/webhooks/default/secret"),
        ("GET", "/openapi.json"),
        ("GET", "/v1/hardware"),
    ]
    for method, path in routes:
        for headers in ({}, auth("wrong"), {"Authorization": "Basic abc"}):
            r = httpx.request(method, server.url + path, headers=headers, json={})
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
    schema = httpx.get(server.url + "/openapi.json", headers=auth(TOKEN)).json()
    assert "/v1/trainings/{training_id}/cancel" in schema["paths"]


def test_models_through_the_official_client(server: Server) -> None:
    c = client(server)
    models = c.models.list().results
    trainer = models[0]
    assert trainer.id == "musicgen-ft/musicgen-fine-tuner"  # the trainer is listed first
    assert DEST in [m.id for m in models[1:]]
    assert trainer.visibility == "public" and trainer.url.startswith(server.url)
    version = trainer.latest_version
    assert len(version.id) == 64 and version.cog_version and version.created_at
    props = version.openapi_schema["components"]["schemas"]["TrainingInput"]["properties"]
    assert {"dataset_path", "model_version", "epochs", "lr"} <= set(props)
    assert "allow_private_urls" not in props  # operator-only
    assert c.models.get(trainer.id).latest_version.id == version.id
    assert version.id in [v.id for v in trainer.versions.list()]
    dest = c.models.get(DEST)
    assert dest.owner == "alice" and dest.name == "tuned" and dest.visibility == "private"
    with pytest.raises(ReplicateError) as info:
        c.models.create("alice", "tuned", visibility="private", hardware="gpu")
    assert info.value.status == 409 and "already exists" in str(info.value.detail)
    # then the base variants, runnable (a prediction input schema) but not trainable
    bases = [m for m in models if m.id.startswith("musicgen-ft/musicgen-") and m is not trainer]
    assert "musicgen-ft/musicgen-small" in [m.id for m in bases]
    for base in bases:
        base_version = c.models.get(base.id).latest_version
        assert len(base_version.id) == 64 and base_version.id != version.id
        schemas = base_version.openapi_schema["components"]["schemas"]
        assert {"prompt", "duration", "output_format"} <= set(schemas["Input"]["properties"])
        assert [v.id for v in base.versions.list()] == [base_version.id]
    other = client(server, OTHER_TOKEN)
    assert [m.id for m in other.models.list().results] == [trainer.id] + [m.id for m in bases]
    with pytest.raises(ReplicateError) as info:
        c.models.create("musicgen-ft", "musicgen-small", visibility="private", hardware="gpu")
    assert info.value.status == 409
    with pytest.raises(ReplicateError) as info:
        other.models.get(DEST)
    assert info.value.status == 404


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = dict(r.json())
    assert body["status"] == status and body["detail"]
    return body


def test_bad_requests_get_the_right_4xx(server: Server) -> None:
    c = client(server)
    model, version = trainer_ref(c)
    url = f"{server.url}/v1/models/{model}/versions/{version}/trainings"
    ok_input = {"dataset_path": "http://127.0.0.1:1/ok.zip", "model_version": "debug"}

    def post(body: Any, **kw: Any) -> httpx.Response:
        return httpx.post(url, json=body, headers=auth(TOKEN), **kw)

    with pytest.raises(ReplicateError) as info:
        c.trainings.create(
            model="nobody/nothing", version=version, input=ok_input, destination=DEST
        )
    assert info.value.status == 404 and "nobody/nothing" in str(info.value.detail)
    with pytest.raises(ReplicateError) as info:
        c.trainings.create(model=model, version="0" * 64, input=ok_input, destination=DEST)
    assert info.value.status == 404
    with pytest.raises(ReplicateError) as info:
        c.trainings.create(model=model, version=version, input=ok_input, destination="bob/x")
    assert info.value.status == 404 and "bob/x" in str(info.value.detail)

    body = _problem(
        post({"destination": DEST, "input": {**ok_input, "epochs": "many", "lr": "fast"}}), 422
    )
    fields = {f["field"]: f["message"] for f in body["invalid_fields"]}
    assert set(fields) == {"input.epochs", "input.lr"}, fields
    assert "input.epochs" in body["detail"] and "input.lr" in body["detail"]
    body = _problem(
        post({"destination": DEST, "input": {**ok_input, "model_version": "large"}}), 422
    )
    assert "not trainable" in body["detail"]
    body = _problem(post({"destination": DEST, "input": {**ok_input, "colour": "red"}}), 422)
    assert body["invalid_fields"][0]["field"] == "input.colour"
    body = _problem(
        post({"destination": DEST, "input": {**ok_input, "allow_private_urls": True}}), 422
    )
    assert "operator" in body["detail"]
    body = _problem(post({"destination": DEST, "input": ok_input, "priority": 1}), 422)
    assert body["invalid_fields"][0]["field"] == "priority"
    body = _problem(post({"destination": DEST, "input": "dataset.zip"}), 422)
    assert body["invalid_fields"][0]["field"] == "input"
    body = _problem(
        post({"destination": DEST, "input": ok_input, "webhook_events_filter": ["sometimes"]}), 422
    )
    assert body["invalid_fields"][0]["field"].startswith("webhook_events_filter")
    _problem(post({"input": ok_input}), 422)  # no destination

    huge = {"destination": DEST, "input": {**ok_input, "one_same_description": "x" * 2_000_000}}
    assert "larger than" in _problem(post(huge), 413)["detail"]

    def chunks() -> Iterator[bytes]:  # no content-length: the limit holds while streaming
        yield b'{"destination": "alice/tuned", "input": {"one_same_description": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}}'

    r = httpx.post(
        url, content=chunks(), headers={**auth(TOKEN), "content-type": "application/json"}
    )
    _problem(r, 413)
    r = httpx.post(
        url, content=b"{not json", headers={**auth(TOKEN), "content-type": "application/json"}
    )
    _problem(r, 400)
    _problem(httpx.get(f"{server.url}/v1/trainings?cursor=bogus", headers=auth(TOKEN)), 400)
    assert c.trainings.list().results == []  # nothing was queued by any of these


def test_a_training_runs_and_its_weights_download(server: Server) -> None:
    c = client(server)
    training = start(c)
    assert training.status == "starting" and training.urls["get"].endswith(training.id)
    assert training.input["dataset_path"].endswith("ok.zip")
    finish(training)
    assert training.status == "succeeded", training.error
    ref = training.output["version"]
    assert ref.startswith(f"{DEST}:") and training.destination == DEST
    assert c.models.get(DEST).latest_version.id == ref.split(":", 1)[1]
    assert "[train] step 3/3" in training.logs and "[export] done" in training.logs
    raw = httpx.get(training.urls["get"], headers=auth(TOKEN)).json()
    assert raw["metrics"]["predict_time"] > 0
    assert raw["metrics"]["total_time"] >= raw["metrics"]["predict_time"]
    assert raw["started_at"] and raw["completed_at"] and raw["model"] == trainer_ref(c)[0]

    weights = training.output["weights"]
    r = httpx.get(weights, headers=auth(TOKEN))
    assert r.status_code == 200 and r.content[257:262] == b"ustar"  # a tar archive
    assert httpx.get(weights).status_code == 401
    assert httpx.get(weights, headers=auth(OTHER_TOKEN)).status_code == 404

    other = client(server, OTHER_TOKEN)
    for call in (
        lambda: other.trainings.get(training.id),
        lambda: other.trainings.cancel(training.id),
    ):
        with pytest.raises(ReplicateError) as info:
            call()
        assert info.value.status == 404
    assert training.id not in [t.id for t in other.trainings.list().results]


def test_a_failed_training_says_why(server: Server) -> None:
    training = finish(start(client(server), "fail.zip"))
    assert training.status == "failed"
    assert training.error == "error: the dataset holds no audio files"
    assert "[prepare] reading the archive" in training.logs
    assert training.output is None

    missing = finish(start(client(server), "nooutput.zip"))
    assert missing.status == "failed" and "trained_model.tar" in missing.error


def test_cancel_stops_the_process_group_and_queued_jobs(server: Server) -> None:
    c = client(server)
    running = start(c, "slow.zip")
    queued = start(c, "slow2.zip")
    wait_until(lambda: (running.reload(), running.status == "processing")[1], 20, "processing")
    pgid = training_pgid(server.data_dir, running.id)

    # logs grow while it runs
    first = wait_until(
        lambda: (running.reload(), running.logs.count("[train] step"))[1], 10, "log lines"
    )
    wait_until(
        lambda: (running.reload(), running.logs.count("[train] step") > first)[1],
        10,
        "more log lines",
    )
    queued.reload()
    assert queued.status == "starting"

    queued.cancel()
    assert queued.status == "canceled" and queued.started_at is None
    canceled_at = time.monotonic()
    running.cancel()
    assert running.status == "canceled"
    wait_until(lambda: not processes_of_group(pgid), 10, "the trainer's process group to end")
    assert time.monotonic() - canceled_at < 10
    running.reload()
    assert running.status == "canceled" and running.output is None
    assert "canceled by an API request" in running.logs
    # the worker is free again: the next training runs
    assert finish(start(c)).status == "succeeded"
    queued.reload()
    assert queued.status == "canceled"  # never started after its cancel


def test_trainings_are_listed_newest_first_in_pages(server: Server) -> None:
    c = client(server)
    for _ in range(3):
        start(c)
    pages = list(iter_pages(c.trainings.list))
    assert all(len(p.results) <= 2 for p in pages) and len(pages) >= 3
    listed = [t for p in pages for t in p.results]
    ids = [t.id for t in listed]
    assert len(ids) == len(set(ids))
    created = [t.created_at for t in listed]
    assert created == sorted(created, reverse=True)
    assert pages[0].previous is None and pages[-1].next is None
    back = c.trainings.list(pages[1].previous)
    assert [t.id for t in back.results] == [t.id for t in pages[0].results]
    assert c.trainings.list(pages[1].next).results[0].id == pages[2].results[0].id
    assert client(server, OTHER_TOKEN).trainings.list().results == []
    for t in listed:
        finish(c.trainings.get(t.id))


def test_webhooks_are_signed_filtered_ordered_and_retried(server: Server) -> None:
    c = client(server)
    secret = c.webhooks.default.secret()
    assert secret.key.startswith("whsec_")
    assert client(server, OTHER_TOKEN).webhooks.default.secret().key != secret.key
    receiver = WebhookReceiver(terminal_failures=1)
    logs_receiver = WebhookReceiver()
    try:
        a = start(c, webhook=receiver.url, webhook_events_filter=["start", "completed"])
        b = start(c, webhook=logs_receiver.url, webhook_events_filter=["logs"])
        finish(a)
        finish(b)
        wait_until(lambda: len(receiver.deliveries) >= 3, 15, "the retried terminal webhook")
        wait_until(lambda: logs_receiver.deliveries, 15, "logs webhooks")
        time.sleep(1.0)
    finally:
        receiver.close()
        logs_receiver.close()
    for d in receiver.deliveries + logs_receiver.deliveries:
        Webhooks.validate(headers=d.headers, body=d.body, secret=secret, tolerance=300)
        assert d.payload["id"] in (a.id, b.id)
    statuses = [(d.payload["status"], d.status) for d in receiver.deliveries]
    assert statuses == [("starting", 200), ("succeeded", 500), ("succeeded", 200)], statuses
    ids = [d.headers["webhook-id"] for d in receiver.deliveries]
    assert ids[1] == ids[2] != ids[0]  # the retry keeps its webhook-id
    final = receiver.deliveries[-1].payload
    assert final["output"]["version"].startswith(DEST) and "[export] done" in final["logs"]
    # filter ["logs"]: no start event, no completed event
    assert {d.payload["status"] for d in logs_receiver.deliveries} == {"processing"}
    times = [d.at for d in logs_receiver.deliveries]
    assert all(t2 - t1 >= 0.45 for t1, t2 in itertools.pairwise(times))


def test_a_restart_resumes_the_running_training_where_it_stopped(tmp_path: Path) -> None:
    """A clean stop (SIGTERM) and a `kill -9`: each time the same training resumes from its
    checkpoint after the restart, keeps its log and ends succeeded with one version."""
    fake = write_fake_trainer(tmp_path)
    srv = Server(tmp_path, extra=["--trainer", f"{sys.executable} {fake}"]).start()
    try:
        c = client(srv)
        c.models.create("alice", "tuned", visibility="private", hardware="gpu")
        training = start(c, "resumable.zip")

        def at_step(n: int) -> bool:
            training.reload()
            return f"[train] step {n}/40" in (training.logs or "")

        wait_until(lambda: at_step(4), 30, "step 4")
        pgid = training_pgid(srv.data_dir, training.id)
        srv.stop()  # SIGTERM, as systemd or Ctrl-C would
        assert not processes_of_group(pgid)
        srv.start()
        wait_until(lambda: at_step(12), 30, "step 12 after the restart")
        assert training.status == "processing"
        pgid = training_pgid(srv.data_dir, training.id)
        srv.kill9()  # the trainer outlives the server: the restart must stop it
        srv.start()
        finish(training, 60)
        assert training.status == "succeeded", training.error
        logs = training.logs
        assert logs.count("resuming from the checkpoint") == 2 and logs.count("resumed by") == 2
        assert logs.count("[train] step 1/40") == 1  # continued, not restarted
        assert logs.count("[train] step 40/40") == 1 and "[export] done" in logs
        assert not processes_of_group(pgid)
        assert len(c.models.get(DEST).versions.list().results) == 1
    finally:
        srv.stop()


def test_the_server_refuses_private_urls_unless_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process app without --allow_private_urls; name resolution is stubbed."""
    table = {"internal.corp": ["10.0.0.8"], "files.example.com": ["93.184.216.34"]}
    monkeypatch.setattr(net, "resolve", lambda host, port: table[host])
    config = ServerConfig(db=tmp_path / "s.db", data_dir=tmp_path / "d", tokens=(TOKEN,))
    http = TestClient(create_app(config))
    http.post(
        "/v1/models",
        headers=auth(TOKEN),
        json={"owner": "alice", "name": "tuned", "visibility": "private"},
    )
    version = http.get("/v1/models", headers=auth(TOKEN)).json()["results"][0]
    url = (
        f"/v1/models/{version['owner']}/{version['name']}/versions/"
        f"{version['latest_version']['id']}/trainings"
    )
    good = {"dataset_path": "https://files.example.com/d.zip", "model_version": "debug"}
    cases = [
        ({"input": {**good, "dataset_path": "https://internal.corp/d.zip"}}, "non-public"),
        ({"input": {**good, "dataset_path": "http://files.example.com/d.zip"}}, "https"),
        ({"input": {**good, "dataset_path": "/etc/passwd"}}, "https"),
        ({"input": good, "webhook": "https://internal.corp/hook"}, "non-public"),
        ({"input": good, "webhook": "https://169.254.169.254/latest"}, "non-public"),
        ({"input": good, "webhook": "http://files.example.com/hook"}, "https"),
    ]
    for body, message in cases:
        r = http.post(url, headers=auth(TOKEN), json={"destination": DEST, **body})
        assert r.status_code == 422 and message in r.json()["detail"], r.text
    r = http.post(
        url,
        headers=auth(TOKEN),
        json={"destination": DEST, "input": good, "webhook": "https://files.example.com/h"},
    )
    assert r.status_code == 201, r.text  # queued (the worker is not started in this test)
