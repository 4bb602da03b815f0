"""Unit tests of the serving package: signing, URL guard, input validation, command line,
store, webhook filtering/throttling/retries. No trainer, no network beyond 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import httpx
import pytest
from replicate.webhook import InvalidSignatureError, Webhooks, WebhookSigningSecret
from serving_support import WebhookReceiver, claim_in_parallel, wait_until

from musicgen_ft import net
from musicgen_ft.errors import InputError, UnsafeUrlError
from musicgen_ft.inputs import TrainInputs
from musicgen_ft.net import check_url
from musicgen_ft.train_cli import build_parser, parse_inputs
from serving import jobfiles, paging
from serving.config import ServerConfig
from serving.signing import new_secret, sign
from serving.store import Store
from serving.validation import InvalidInputError, validate_input
from serving.webhooks import RetryPolicy, Snapshot, WebhookHub, wants
from serving.worker import Worker, failure_message, trainer_argv


def test_signature_verifies_with_the_official_client() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and secret.count("_") == 1
    body = b'{"id": "abc", "status": "succeeded"}'
    now = str(int(time.time()))
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": now,
        "webhook-signature": sign(secret, "msg_1", now, body),
    }
    key = WebhookSigningSecret(key=secret)
    Webhooks.validate(headers=headers, body=body.decode(), secret=key, tolerance=60)  # no raise
    with pytest.raises(InvalidSignatureError):
        Webhooks.validate(headers=headers, body=body.decode() + " ", secret=key)
    with pytest.raises(InvalidSignatureError):
        Webhooks.validate(
            headers=headers, body=body.decode(), secret=WebhookSigningSecret(key=new_secret())
        )


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Name resolution stubbed: no test connects to or resolves a real address."""
    table: dict[str, list[str]] = {}

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    monkeypatch.setattr(net, "resolve", resolve)
    return table


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "fe80::1",
        "0.0.0.0",
        "100.64.0.1",
    ],
)
def test_private_addresses_are_refused(fake_dns: dict[str, list[str]], address: str) -> None:
    fake_dns["hooks.example.com"] = ["93.184.216.34", address]
    with pytest.raises(UnsafeUrlError, match="non-public address"):
        check_url("https://hooks.example.com/x", allow_private=False)


def test_url_rules(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["hooks.example.com"] = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    check_url("https://hooks.example.com/x", allow_private=False)
    for bad, message in [
        ("http://hooks.example.com/x", "plain http:// is not accepted"),
        ("ftp://hooks.example.com/x", "only https://"),
        ("file:///etc/passwd", "only https://"),
        ("https:///nohost", "no host"),
        ("https://nowhere.example.com/", "cannot resolve"),
        ("https://10.0.0.7/", "non-public"),
        ("https://hooks.example.com:99999/", "not a valid URL"),
    ]:
        with pytest.raises(UnsafeUrlError, match=message):
            check_url(bad, allow_private=False)
    # The operator's setting allows private hosts, and plain http to those only.
    check_url("http://10.0.0.7:8080/data.zip", allow_private=True)
    with pytest.raises(UnsafeUrlError, match="plain http://"):
        check_url("http://hooks.example.com/x", allow_private=True)
    with pytest.raises(UnsafeUrlError):
        check_url("file:///etc/passwd", allow_private=True)


def test_validation_names_every_bad_field() -> None:
    with pytest.raises(InvalidInputError) as info:
        validate_input(
            {
                "dataset_path": "file:///etc/passwd",
                "epochs": "three",
                "lr": [1],
                "model_version": "large",
                "colour": "blue",
                "allow_private_urls": True,
                "batch_size": 0,
            },
            allow_private_urls=False,
        )
    errors = {e.field: e.message for e in info.value.errors}
    assert set(errors) == {
        "input.dataset_path",
        "input.epochs",
        "input.lr",
        "input.model_version",
        "input.colour",
        "input.allow_private_urls",
        "input.batch_size",
    }
    assert "not an integer" in errors["input.epochs"]
    assert "not a number" in errors["input.lr"]
    assert "not trainable" in errors["input.model_version"]
    assert "unknown input" in errors["input.colour"]
    assert "server operator" in errors["input.allow_private_urls"]
    assert ">= 1" in errors["input.batch_size"]
    assert "https" in errors["input.dataset_path"]
    with pytest.raises(InvalidInputError, match="dataset_path: is required"):
        validate_input({}, allow_private_urls=True)
    with pytest.raises(InvalidInputError, match="must be an object"):
        validate_input(["x"], allow_private_urls=True)


def test_labels_file_must_be_a_url_not_a_server_path() -> None:
    with pytest.raises(InvalidInputError) as info:
        validate_input(
            {"dataset_path": "https://example.com/d.zip", "labels_file": "/etc/passwd"},
            allow_private_urls=False,
        )
    assert "input.labels_file" in [e.field for e in info.value.errors]


def test_validation_applies_the_operator_setting() -> None:
    inputs = validate_input(
        {"dataset_path": "http://127.0.0.1:1/d.zip", "model_version": "debug", "epochs": "2"},
        allow_private_urls=True,
    )
    assert inputs.allow_private_urls is True and inputs.epochs == 2


def test_trainer_command_line_round_trips_through_train_py() -> None:
    inputs = TrainInputs(
        dataset_path="https://x/d.zip",
        model_version="debug",
        epochs=1,
        drop_vocals=False,
        allow_private_urls=True,
        one_same_description="--epochs=99 -x a description that looks like options",
    )
    argv = trainer_argv(("py", "train.py"), inputs, Path("/data/t/output"))
    assert argv[:3] == ["py", "train.py", "--output_dir=/data/t/output"]
    pairs = dict(arg.split("=", 1) for arg in argv[3:])
    assert pairs["--drop_vocals"] == "false" and pairs["--allow_private_urls"] == "true"
    assert pairs["--epochs"] == "1" and "--labels_file" not in pairs  # None: left out
    # train.py's own parser reads it back to the same inputs
    args = build_parser().parse_args(argv[2:])
    assert parse_inputs(args) == inputs and args.output_dir == "/data/t/output"


def test_failure_message_uses_the_trainers_last_line() -> None:
    logs = "[serve x] started\n[fetch] ok\nerror: the dataset holds no audio\n\n"
    assert failure_message(1, logs) == "error: the dataset holds no audio"
    assert "SIGKILL" in failure_message(-9, logs)
    assert failure_message(3, "[serve x] started\n") == "The trainer exited with code 3."


def _store(tmp_path: Path) -> Store:
    return Store(tmp_path / "s.db")


def _add(store: Store, token: str = "tok", **extra: object) -> str:
    import secrets

    training_id = secrets.token_hex(8)
    store.add_training(
        id=training_id,
        token_id=token,
        model="o/m",
        version="v",
        destination="a/b",
        input={"dataset_path": "x"},
        webhook=None,
        webhook_events_filter=None,
        base_url="http://h",
    )
    return training_id


def test_store_pages_newest_first_and_scopes_by_token(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ids = [_add(store) for _ in range(5)]
    _add(store, token="other")
    pages = store.training_pages
    rows = pages.rows("tok", None, 2)
    assert [r.id for r in rows] == ids[::-1][:2] and pages.exists("tok", before=rows[-1].seq)
    rows2 = pages.rows("tok", paging.encode("b", rows[-1].seq), 2)
    assert [r.id for r in rows2] == ids[::-1][2:4]
    back = pages.rows("tok", paging.encode("a", rows2[0].seq), 2)
    assert [r.id for r in back] == [r.id for r in rows]
    assert not pages.exists("tok", after=rows[0].seq)
    assert store.training(ids[0], "other") is None and store.training(ids[0], "tok")


def test_only_one_terminal_status_wins(tmp_path: Path) -> None:
    store = _store(tmp_path)
    training_id = _add(store)
    claimed = store.claim("w1", stale_s=30)
    assert claimed is not None and claimed.id == training_id and claimed.status == "processing"
    assert store.finish(training_id, "canceled")
    assert not store.finish(training_id, "succeeded", output_version="v1")
    row = store.training(training_id)
    assert row is not None and row.status == "canceled" and row.output_version is None
    assert store.heartbeat(training_id, "w1") == "canceled"  # how the worker learns of it


def test_claims_never_hand_one_training_to_two_workers(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ids = {_add(store) for _ in range(12)}
    got = claim_in_parallel(tmp_path / "s.db")
    claimed = [i for rows in got.values() for i in rows]
    assert sorted(claimed) == sorted(ids)  # each exactly once
    assert store.claim("late", stale_s=30) is None


def test_a_silent_worker_loses_its_training_to_the_next_claim(tmp_path: Path) -> None:
    store = _store(tmp_path)
    training_id = _add(store)
    first = store.claim("dead", stale_s=30)
    assert first is not None and first.attempts == 1
    assert store.claim("alive", stale_s=30) is None  # its heartbeat is fresh
    time.sleep(0.05)
    second = store.claim("alive", stale_s=0.01)
    assert second is not None and second.id == training_id and second.attempts == 2
    assert second.started_at == first.started_at  # still the same run for the API
    assert store.heartbeat(training_id, "dead") is None  # the old worker learns it lost it
    assert store.heartbeat(training_id, "alive") == "processing"


def test_recovery_hands_back_what_a_dead_worker_here_ran(tmp_path: Path) -> None:
    import socket

    store = _store(tmp_path)
    mine, elsewhere, queued = _add(store), _add(store), _add(store)
    assert store.claim(f"{socket.gethostname()}:999999999:ab", stale_s=30) is not None
    assert store.claim("other-host:123:cd", stale_s=30) is not None
    config = ServerConfig(db=tmp_path / "s.db", data_dir=tmp_path / "data", tokens=("t",))
    worker = Worker(store, config, lambda i, e: None)
    worker.recover()
    rows = {i: store.training(i) for i in (mine, elsewhere, queued)}
    assert all(r is not None and r.status in ("processing", "starting") for r in rows.values())
    assert rows[mine] is not None and rows[mine].worker_id is None  # released: resumes first
    assert rows[elsewhere] is not None and rows[elsewhere].worker_id == "other-host:123:cd"
    resumed = store.claim(worker.worker_id, stale_s=30)
    assert resumed is not None and resumed.id == mine and resumed.attempts == 2
    assert "resume from its last checkpoint" in jobfiles.read_logs(tmp_path / "data", mine)


def test_a_training_that_keeps_losing_its_worker_fails_with_the_reason(tmp_path: Path) -> None:
    store = _store(tmp_path)
    training_id = _add(store)
    config = ServerConfig(
        db=tmp_path / "s.db", data_dir=tmp_path / "data", tokens=("t",), max_attempts=2
    )
    for n in range(3):
        row = store.claim(f"gone-{n}", stale_s=30)
        assert row is not None
        store.release(training_id)
    events: list[tuple[str, str]] = []
    worker = Worker(store, config, lambda i, e: events.append((i, e)))
    row = store.claim(worker.worker_id, stale_s=30)
    assert row is not None and row.attempts == 4
    worker._run(row)
    ended = store.training(training_id)
    assert ended is not None and ended.status == "failed"
    assert ended.error is not None and "not resumed again" in ended.error
    assert events == [(training_id, "completed")]


def test_filters() -> None:
    done = {"output": {"version": "a/b:1"}}
    assert wants(("start", "completed"), "completed", done)
    assert not wants(("start",), "logs", done)
    assert wants(("output",), "completed", done)  # the final output is an output event
    assert not wants(("output",), "completed", {"output": None})
    assert RetryPolicy(0.5).delay(1) == 0.5 and RetryPolicy(0.5).delay(4) == 4.0


def _hub(
    receiver: WebhookReceiver,
    payload: dict[str, object],
    events: tuple[str, ...],
    retry: RetryPolicy,
) -> WebhookHub:
    secret = new_secret()
    return WebhookHub(
        lambda _: Snapshot(payload, receiver.url, events, secret), allow_private=True, retry=retry
    )


def test_logs_events_are_throttled_and_terminal_ones_retried() -> None:
    receiver = WebhookReceiver(terminal_failures=1)
    payload: dict[str, object] = {"id": "t1", "status": "starting", "logs": ""}
    hub = _hub(receiver, payload, ("start", "logs", "completed"), RetryPolicy(0.2, 5))
    try:
        hub.emit("t1", "start")
        time.sleep(0.2)
        payload["status"] = "processing"
        for _ in range(30):  # 30 log updates in ~1.5 s
            hub.emit("t1", "logs")
            time.sleep(0.05)
        payload["status"] = "succeeded"
        hub.emit("t1", "completed")
        hub.emit("t1", "logs")  # nothing follows the terminal event
        wait_until(
            lambda: (
                len(receiver.deliveries) >= 3
                and receiver.deliveries[-1].status == 200
                and json.loads(receiver.deliveries[-1].body)["status"] == "succeeded"
            ),
            10,
            "the retried terminal webhook",
        )
        time.sleep(0.6)
    finally:
        hub.close()
        receiver.close()
    kinds = [json.loads(d.body)["status"] for d in receiver.deliveries]
    logs = [d for d in receiver.deliveries if json.loads(d.body)["status"] == "processing"]
    assert 2 <= len(logs) <= 5, kinds
    gaps = [b.at - a.at for a, b in itertools.pairwise(logs)]
    assert all(gap >= 0.45 for gap in gaps), gaps
    final = [d for d in receiver.deliveries if json.loads(d.body)["status"] == "succeeded"]
    assert [d.status for d in final] == [500, 200]
    assert len({d.headers["webhook-id"] for d in final}) == 1  # same id across retries
    assert kinds[0] == "starting" and kinds[-1] == "succeeded"


def test_redirects_are_not_followed() -> None:
    receiver = WebhookReceiver(answers=[302])
    hub = _hub(receiver, {"id": "t2", "status": "failed"}, ("completed",), RetryPolicy(0.1, 2))
    try:
        hub.emit("t2", "completed")
        wait_until(lambda: len(receiver.deliveries) == 2, 5, "the retry after a redirect")
    finally:
        hub.close()
        receiver.close()
    assert [d.status for d in receiver.deliveries] == [302, 200]


def test_webhooks_to_private_hosts_are_not_sent(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["metadata.example"] = ["169.254.169.254"]
    sent: list[httpx.Request] = []
    hub = WebhookHub(
        lambda _: Snapshot(
            {"id": "t3"}, "https://metadata.example/x", ("completed",), new_secret()
        ),
        allow_private=False,
        retry=RetryPolicy(0.01, 2),
    )
    hub._client = httpx.Client(
        transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200))
    )  # type: ignore[func-returns-value]
    try:
        hub.emit("t3", "completed")
        wait_until(hub.idle, 5, "the channel to give up")
    finally:
        hub.close()
    assert sent == []


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("seed", 2**32, "<= 4294967295"),
        ("one_same_description", "x" * 128 * 1024, "longer than 2000 characters"),
        ("epochs", True, None),  # a boolean is no epoch count
    ],
)
def test_inputs_the_trainer_would_refuse_are_refused_at_create_time(
    field: str, value: object, fragment: str | None
) -> None:
    raw = {"dataset_path": "http://127.0.0.1:1/d.zip", field: value}  # loopback: no DNS
    try:
        inputs = validate_input(raw, allow_private_urls=True)
    except InvalidInputError as exc:
        errors = {e.field: e.message for e in exc.errors}
        assert f"input.{field}" in errors
        assert fragment is None or fragment in errors[f"input.{field}"]
        with pytest.raises(InputError):  # the trainer refuses the same value
            TrainInputs.from_dict(raw)
        return
    assert fragment is None  # accepted here: then the trainer accepts it too
    assert TrainInputs.from_dict({**raw, "allow_private_urls": True}) == inputs


def test_a_description_that_looks_like_an_option_reaches_the_trainer_intact() -> None:
    inputs = validate_input(
        {"dataset_path": "http://127.0.0.1:1/d.zip", "one_same_description": "-x --epochs=9"},
        allow_private_urls=True,
    )
    argv = trainer_argv(("train.py",), inputs, Path("/o"))
    assert parse_inputs(build_parser().parse_args(argv[1:])) == inputs


PROGRESS_LOG = """\
12:35:28 INFO [check] done in 9.8 s
12:35:28 INFO [prepare] started
12:35:28 INFO [prepare] done in 0.6 s
12:35:28 INFO [train] started
12:35:45 INFO [train] Train | Epoch 1 | 1/3 | 0.86 it/sec | ce 4.285 | ppl 72.656
12:35:47 INFO [train] Train | Epoch 1 | 2/3 | 1.05 it/sec | ce 4.339 | ppl 76.610
12:35:48 INFO [train] Train Summary | Epoch 1 | ce=4.303 | ppl=73.974 | duration=2.932
12:35:48 INFO [train] Valid Summary | Epoch 1 | ce=4.393 | ppl=80.891 | duration=0.364
12:35:49 INFO [train] Train | Epoch 2 | 1/3 | 1.63 it/sec | ce 4.174 | ppl 65.551
"""


def test_progress_reads_stage_steps_eta_and_losses_from_the_log() -> None:
    from serving.progress import read_progress

    p = read_progress(PROGRESS_LOG, {"epochs": 3, "updates_per_epoch": 3})
    assert p.stage == "train" and p.stages_done == ["check", "prepare"]
    assert (p.step, p.total) == (4, 9)  # epoch 1 ended (3 updates), then 1 of epoch 2
    assert [(pt.step, pt.ce) for pt in p.train] == [(1, 4.285), (2, 4.339), (4, 4.174)]
    assert p.epochs == [{"epoch": 1, "train": 4.303, "valid": 4.393}]
    assert p.eta_s == pytest.approx(5 * 4 / 3, abs=0.05)  # 3 updates in 4 s, 5 to go
    done = read_progress(PROGRESS_LOG + "12:36:00 INFO [train] done in 30 s\n", {"epochs": 3})
    assert done.stage is None and done.step == done.total == 9 and done.eta_s is None
    assert read_progress("", {"epochs": 3}).as_json()["step"] == 0
