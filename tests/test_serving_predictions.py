"""The predictions API through the official `replicate` client against a live `musicgen-ft
serve` over https on 127.0.0.1: the real predictor generating with the tiny `debug` base model
on CPU; at the end (slow) a real `debug` training from an uploaded dataset, its samples and
curves, and `replicate.run` of the new version."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import soundfile as sf
from replicate.exceptions import ReplicateError
from replicate.helpers import FileOutput
from replicate.webhook import Webhooks
from serving_support import (
    OTHER_TOKEN,
    TOKEN,
    WebhookReceiver,
    auth,
    client,
    debug_input,
    iter_pages,
    make_dataset,
    wait_until,
    write_fake_trainer,
)
from tls_support import HttpsServer, trusted

TERMINAL = ("succeeded", "failed", "canceled")
DEBUG = "musicgen-ft/musicgen-debug"
SR = 32000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    tmp = tmp_path_factory.mktemp("serve")
    fake = write_fake_trainer(tmp)
    with trusted(tmp) as (cert, key):
        srv = HttpsServer(
            tmp,
            cert,
            key,
            extra=[
                "--trainer", f"{sys.executable} {fake}",
                "--page_size", "2",
                "--predict_device", "cpu",
            ],
        )  # fmt: skip
        srv.start()
        yield srv
        srv.stop()


def debug_version(c: Any) -> str:
    return str(c.models.get(DEBUG).latest_version.id)


def wait_for(prediction: Any, timeout: float = 120) -> Any:
    def done() -> bool:
        prediction.reload()
        return prediction.status in TERMINAL

    wait_until(done, timeout, f"prediction {prediction.id} to end", every=0.2)
    return prediction


def audio(data: bytes) -> tuple[int, float]:
    info = sf.info(io.BytesIO(data))
    return info.samplerate, info.frames / info.samplerate


def test_replicate_run_returns_audio_of_the_asked_duration(server: HttpsServer) -> None:
    c = client(server)
    version = debug_version(c)
    out = c.run(f"{DEBUG}:{version}", input={"prompt": "calm piano", "duration": 2, "seed": 5})
    assert isinstance(out, FileOutput) and out.url.startswith(f"{server.url}/v1/predictions/")
    rate, seconds = audio(out.read())
    assert rate == SR and abs(seconds - 2.0) <= 1 / 25  # one frame of the LM at most

    mp3 = c.run(DEBUG, input={"prompt": "drums", "duration": 1, "output_format": "mp3"})
    assert isinstance(mp3, FileOutput) and mp3.url.endswith(".mp3")
    rate, seconds = audio(mp3.read())
    assert rate == SR and 0.9 <= seconds <= 1.2  # mp3 pads a little

    plain = c.run(f"{DEBUG}:{version}", input={"duration": 1}, use_file_output=False)
    assert isinstance(plain, str) and plain.endswith(".wav")
    assert httpx.get(plain).status_code == 401  # the audio is behind the token
    assert httpx.get(plain, headers=auth(OTHER_TOKEN)).status_code == 404
    assert audio(httpx.get(plain, headers=auth(TOKEN)).content)[0] == SR

    listed = c.predictions.list().results
    assert listed[0].model == DEBUG and listed[0].version == version
    done = c.predictions.get(listed[0].id)
    assert done.status == "succeeded" and done.metrics["predict_time"] > 0
    assert "100%|" in done.logs and done.progress is not None and done.progress.percentage == 1


def test_predictions_are_listed_canceled_and_scoped_to_their_token(server: HttpsServer) -> None:
    c = client(server)
    version = debug_version(c)
    long = c.predictions.create(version=version, input={"prompt": "long", "duration": 300})
    queued = c.models.predictions.create(model=DEBUG, input={"duration": 1})
    assert long.status == "starting" and long.urls["cancel"].endswith("/cancel")
    wait_until(lambda: (long.reload(), "%|" in (long.logs or ""))[1], 120, "generation")
    assert long.status == "processing"
    queued.reload()
    assert queued.status == "starting"  # one at a time
    queued.cancel()
    assert queued.status == "canceled" and queued.started_at is None
    canceled = time.monotonic()
    long.cancel()
    assert long.status == "canceled"
    wait_until(lambda: (long.reload(), "[predict] canceled" in long.logs)[1], 10, "the stop")
    assert time.monotonic() - canceled < 10 and long.output is None
    # the predictor kept its model: the next prediction does not load it again
    after = wait_for(c.predictions.create(version=version, input={"duration": 1}))
    assert after.status == "succeeded" and "[predict] loading" not in after.logs

    pages = list(iter_pages(c.predictions.list))
    assert len(pages) >= 2 and all(len(p.results) <= 2 for p in pages)
    ids = [p.id for page in pages for p in page.results]
    assert ids[:3] == [after.id, queued.id, long.id] and len(ids) == len(set(ids))
    assert c.predictions.list(pages[1].previous).results[0].id == ids[0]

    other = client(server, OTHER_TOKEN)
    assert other.predictions.list().results == []
    for call in (lambda: other.predictions.get(long.id), lambda: other.predictions.cancel(long.id)):
        with pytest.raises(ReplicateError) as info:
            call()
        assert info.value.status == 404


def test_prediction_webhooks_are_signed_and_filtered(server: HttpsServer) -> None:
    c = client(server)
    receiver = WebhookReceiver(terminal_failures=1)
    logs_receiver = WebhookReceiver()
    try:
        a = c.predictions.create(
            version=debug_version(c),
            input={"duration": 1},
            webhook=receiver.url,
            webhook_events_filter=["start", "completed"],
        )
        b = c.predictions.create(
            version=debug_version(c),
            input={"duration": 1},
            webhook=logs_receiver.url,
            webhook_events_filter=["logs"],
        )
        wait_for(a)
        wait_for(b)
        wait_until(lambda: len(receiver.deliveries) >= 3, 15, "the retried terminal webhook")
        wait_until(lambda: logs_receiver.deliveries, 15, "logs webhooks")
        time.sleep(1.0)
    finally:
        receiver.close()
        logs_receiver.close()
    secret = c.webhooks.default.secret()
    for d in receiver.deliveries + logs_receiver.deliveries:
        Webhooks.validate(headers=d.headers, body=d.body, secret=secret, tolerance=300)
    statuses = [(d.payload["status"], d.status) for d in receiver.deliveries]
    assert statuses == [("starting", 200), ("succeeded", 500), ("succeeded", 200)], statuses
    final = receiver.deliveries[-1].payload
    assert final["id"] == a.id and final["output"].endswith(".wav") and final["logs"]
    assert {d.payload["status"] for d in logs_receiver.deliveries} == {"processing"}
    assert {d.payload["id"] for d in logs_receiver.deliveries} == {b.id}


def test_prefer_wait_holds_the_request_until_the_prediction_ends(server: HttpsServer) -> None:
    c = client(server)
    url = f"{server.url}/v1/predictions"
    body = {"version": debug_version(c), "input": {"duration": 1}}
    r = httpx.post(url, json=body, headers={**auth(TOKEN), "Prefer": "wait=50"}, timeout=60)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "succeeded" and r.json()["output"].endswith(".wav")

    # one prediction runs at a time: a long one ahead keeps the next queued past its wait, however
    # fast this machine generates
    ahead = c.predictions.create(version=body["version"], input={"duration": 300})
    started = time.monotonic()
    r = httpx.post(url, json=body, headers={**auth(TOKEN), "Prefer": "wait=2"}, timeout=30)
    assert 2 <= time.monotonic() - started < 10
    # not done within the wait: `starting`, as Replicate answers (the client then polls)
    assert r.status_code == 201 and r.json()["status"] == "starting"
    c.predictions.cancel(r.json()["id"])
    c.predictions.cancel(ahead.id)
    r = httpx.post(url, json=body, headers={**auth(TOKEN), "Prefer": "wait=soon"})
    assert r.status_code == 400 and "wait=N" in r.json()["detail"]


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json())


def test_bad_prediction_requests_name_the_field(server: HttpsServer) -> None:
    c = client(server)
    version = debug_version(c)
    before = [p.id for p in c.predictions.list().results]
    url = f"{server.url}/v1/predictions"

    def post(body: Any, path: str = url) -> httpx.Response:
        return httpx.post(path, json=body, headers=auth(TOKEN))

    body = _problem(post({"version": version, "input": {"duration": "long", "top_k": -1}}), 422)
    fields = {f["field"] for f in body["invalid_fields"]}
    assert fields == {"input.duration", "input.top_k"}, body
    body = _problem(post({"version": version, "input": {"colour": "red"}}), 422)
    assert body["invalid_fields"][0]["field"] == "input.colour"
    body = _problem(post({"version": version, "input": {"continuation": True}}), 422)
    assert body["invalid_fields"][0]["field"] == "input.input_audio"
    assert "continuation needs input_audio" in body["detail"]
    melody = c.models.get("musicgen-ft/musicgen-melody").latest_version.id
    body = _problem(post({"version": melody, "input": {"duration": 40}}), 422)
    assert body["invalid_fields"][0]["field"] == "input.duration" and "30" in body["detail"]
    foreign = f"{server.url}/v1/files/{'a' * 26}"
    body = _problem(post({"version": version, "input": {"input_audio": foreign}}), 422)
    assert body["invalid_fields"][0]["field"] == "input.input_audio"
    assert "no file of yours" in body["detail"]
    _problem(post({"version": "0" * 64, "input": {}}), 404)
    _problem(post({"input": {}}), 422)
    _problem(post({"input": {}}, f"{server.url}/v1/models/alice/nothing/predictions"), 404)
    body = _problem(post({"version": version, "input": {}, "webhook": "ftp://x/y"}), 422)
    assert body["invalid_fields"][0]["field"] == "webhook"
    assert [p.id for p in c.predictions.list().results] == before  # nothing was queued


def test_predictions_survive_a_server_killed_mid_run(server: HttpsServer) -> None:
    """Last of the module's server: it is killed and started again."""
    c = client(server)
    version = debug_version(c)
    running = c.predictions.create(version=version, input={"duration": 3, "seed": 1})
    queued = c.predictions.create(version=version, input={"duration": 1})
    wait_until(lambda: (running.reload(), "%|" in (running.logs or ""))[1], 120, "generation")
    server.kill9()  # the predictor dies with it (parent-death signal)
    server.start()
    assert wait_for(running).status == "succeeded", running.error
    assert "run again" in running.logs and running.logs.count("started") == 2
    assert wait_for(queued).status == "succeeded"
    out = httpx.get(running.output, headers=auth(TOKEN)).content
    assert abs(audio(out)[1] - 3.0) <= 1 / 25


def test_the_predictor_keeps_the_last_models_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: the LRU of `serving.predictor.Models`, loads counted."""
    import inference.loading
    from serving import predictor

    loads: list[str] = []

    def load_model(weights: str | None, variant: str | None, device: str) -> Any:
        loads.append(weights or f"base {variant}")
        model = type("M", (), {"_generate_tokens": lambda *a: None})()
        return type("Loaded", (), {"model": model})()

    monkeypatch.setattr(inference.loading, "load_model", load_model)
    models = predictor.Models(2, "cpu")
    for key in ("a", "b", "a", "c", "a", "b"):
        models.get(key, f"{key}.tar", "debug")
    # a, b loaded; a used again; c evicts b (least recent); a kept; b loaded again
    assert loads == ["a.tar", "b.tar", "c.tar", "b.tar"]
    models.clear()
    models.get("a", "a.tar", "debug")
    assert loads[-1] == "a.tar"


# --- end to end with the real trainer (slow) ------------------------------------------------

DEST = "alice/tuned-run"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpsServer, Any]]:
    """A server that trained `debug` on a dataset uploaded by the official client."""
    tmp = tmp_path_factory.mktemp("trained")
    archive = make_dataset(tmp / "dataset")
    with trusted(tmp) as (cert, key):
        srv = HttpsServer(tmp, cert, key, extra=["--predict_device", "cpu"]).start()
        try:
            c = client(srv)
            c.models.create("alice", "tuned-run", visibility="private", hardware="cpu")
            trainer = c.models.list().results[0]
            with archive.open("rb") as f:
                training = c.trainings.create(
                    model=trainer.id,
                    version=trainer.latest_version.id,
                    input=debug_input(f),
                    destination=DEST,
                )
            wait_until(
                lambda: (training.reload(), training.status in TERMINAL)[1],
                400,
                "the training",
                every=0.5,
            )
            assert training.status == "succeeded", f"{training.error}\n{training.logs[-3000:]}"
            yield srv, training
        finally:
            srv.stop()


@pytest.mark.slow
def test_a_trained_version_runs_and_its_samples_and_curves_download(
    trained: tuple[HttpsServer, Any],
) -> None:
    srv, training = trained
    c = client(srv)
    # the dataset was an upload: shown as its URL, read by the trainer from the stored file
    shown = training.input["dataset_path"]
    assert shown.startswith(f"{srv.url}/v1/files/")
    file_id = shown.rsplit("/", 1)[1]
    assert c.files.get(file_id).name == "songs.zip"
    weights = httpx.get(training.output["weights"], headers=auth(TOKEN)).content
    with tarfile.open(fileobj=io.BytesIO(weights)) as tar:
        member = tar.extractfile("metadata.json")
        assert member is not None
        used = json.load(member)["inputs"]["dataset_path"]
    assert used == str(srv.data_dir.resolve() / "files" / file_id / "songs.zip")

    samples = training.output["samples"]
    assert len(samples) == 1 and samples[0]["prompt"] == "synthetic test music"
    for sample in samples:
        for role in ("finetuned", "base"):
            r = httpx.get(sample[role], headers=auth(TOKEN))
            assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
            rate, seconds = audio(r.content)
            assert rate == SR and abs(seconds - 1.0) <= 1 / 25
            assert httpx.get(sample[role], headers=auth(OTHER_TOKEN)).status_code == 404
    png = httpx.get(training.output["curves"]["png"], headers=auth(TOKEN))
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    csv = httpx.get(training.output["curves"]["csv"], headers=auth(TOKEN))
    assert csv.status_code == 200 and csv.text.count("\n") >= 2
    quality = training.output["quality"]
    assert quality["summary"].startswith("quality: ")
    report = httpx.get(quality["json"], headers=auth(TOKEN))
    assert report.status_code == 200 and "memorisation" in report.json()
    bogus = training.output["curves"]["png"].replace("curves/loss.png", "state_dict.bin")
    assert httpx.get(bogus, headers=auth(TOKEN)).status_code == 404  # only listed results

    version = training.output["version"]
    out = c.run(version, input={"prompt": samples[0]["prompt"], "duration": 2})
    assert isinstance(out, FileOutput)
    rate, seconds = audio(out.read())
    assert rate == SR and abs(seconds - 2.0) <= 1 / 25

    latest = c.models.predictions.create(model=DEST, input={"duration": 1})
    assert latest.version == version.split(":")[1] and latest.model == DEST
    assert wait_for(latest).status == "succeeded", latest.error
