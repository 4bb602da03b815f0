"""End to end with the real trainer: the official `replicate` client against a live
`musicgen-ft serve`, training the tiny `debug` variant on a dataset served from 127.0.0.1."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from replicate.webhook import Webhooks
from serving_support import (
    TOKEN,
    FileServer,
    Server,
    WebhookReceiver,
    auth,
    client,
    debug_input,
    make_dataset,
    processes_of_group,
    trainer_pids,
    training_pgid,
    wait_until,
)

pytestmark = pytest.mark.slow
TERMINAL = ("succeeded", "failed", "canceled")
DEST = "alice/tuned-e2e"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("dataset")
    archive = make_dataset(folder)
    files = FileServer(folder)
    yield f"{files.url}/{archive.name}"
    files.close()


def create(c: Any, dataset_url: str, inputs: dict[str, Any] | None = None, **params: Any) -> Any:
    trainer = c.models.list().results[0]
    return c.trainings.create(
        model=trainer.id,
        version=trainer.latest_version.id,
        input=debug_input(dataset_url, **(inputs or {})),
        destination=DEST,
        **params,
    )


def reload_until(training: Any, predicate: Any, timeout: float, what: str) -> Any:
    return wait_until(lambda: (training.reload(), predicate(training))[1], timeout, what, every=0.3)


def test_official_client_trains_lists_downloads_and_cancels(tmp_path: Path, dataset: str) -> None:
    server = Server(tmp_path).start()
    receiver = WebhookReceiver(terminal_failures=1)
    try:
        c = client(server)
        c.models.create("alice", "tuned-e2e", visibility="private", hardware="gpu")
        training = create(
            c, dataset, webhook=receiver.url, webhook_events_filter=["start", "completed"]
        )
        # logs grow while it runs
        sizes: list[int] = []

        def grew(t: Any) -> bool:
            if t.logs and (not sizes or len(t.logs) > sizes[-1]):
                sizes.append(len(t.logs))
            return len(sizes) >= 3 or t.status in TERMINAL

        reload_until(training, grew, 120, "the logs to grow")
        assert len(sizes) >= 3 and training.status == "processing", (sizes, training.status)
        reload_until(training, lambda t: t.status in TERMINAL, 300, "the training to end")
        assert training.status == "succeeded", f"{training.error}\n{training.logs[-3000:]}"
        for stage in ("[prepare]", "[train]", "[export]"):
            assert stage in training.logs
        assert "ce " in training.logs and "it/sec" in training.logs  # loss and rate per step

        ref = training.output["version"]
        assert ref.startswith(f"{DEST}:") and c.models.get(DEST).latest_version.id == ref[-64:]
        raw = httpx.get(training.urls["get"], headers=auth(TOKEN)).json()
        assert 0 < raw["metrics"]["predict_time"] <= raw["metrics"]["total_time"]
        assert training.id in [t.id for t in c.trainings.list().results]

        r = httpx.get(training.output["weights"], headers=auth(TOKEN))
        assert r.status_code == 200
        with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
            assert "state_dict.bin" in tar.getnames()

        wait_until(lambda: len(receiver.deliveries) >= 3, 15, "webhooks")
        secret = c.webhooks.default.secret()
        for d in receiver.deliveries:
            Webhooks.validate(headers=d.headers, body=d.body, secret=secret, tolerance=600)
        assert [(d.payload["status"], d.status) for d in receiver.deliveries] == [
            ("starting", 200),
            ("succeeded", 500),
            ("succeeded", 200),
        ]

        # a second training, canceled mid-run: its whole process group is gone within 10 s
        second = create(c, dataset)
        reload_until(second, lambda t: "[prepare]" in (t.logs or ""), 120, "it to be running")
        pgid = training_pgid(server.data_dir, second.id)
        assert processes_of_group(pgid)
        second.cancel()
        canceled = time.monotonic()
        assert second.status == "canceled"
        wait_until(lambda: not processes_of_group(pgid), 10, "the process group to end")
        assert time.monotonic() - canceled < 10
        second.reload()
        assert second.status == "canceled" and second.output is None
        assert c.models.get(DEST).latest_version.id == ref[-64:]  # no version from it
    finally:
        receiver.close()
        server.stop()


def test_kill_9_during_a_training_resumes_it_from_its_checkpoint(
    tmp_path: Path, dataset: str
) -> None:
    server = Server(tmp_path).start()
    try:
        c = client(server)
        c.models.create("alice", "tuned-e2e", visibility="private", hardware="gpu")
        running = create(c, dataset, {"epochs": 3})
        queued = create(c, dataset)
        out_dir = server.data_dir / "trainings" / running.id / "output"
        xps = out_dir / "work" / "train" / "dora" / "xps"
        wait_until(lambda: list(xps.glob("*/checkpoint.th")), 240, "the first checkpoint")
        old_trainers = set(trainer_pids(out_dir))
        running.reload()
        logs_before = running.logs
        server.kill9()
        server.start()  # stops the orphaned trainer, then resumes the same training
        wait_until(lambda: not old_trainers & set(trainer_pids(out_dir)), 20, "the orphan to stop")
        reload_until(running, lambda t: t.status in TERMINAL, 300, "the resumed training")
        assert running.status == "succeeded", f"{running.error}\n{running.logs[-3000:]}"
        assert running.logs.startswith(logs_before[:200])  # one log, continued
        assert "resuming from the checkpoint" in running.logs
        assert "saved after epoch" in running.logs and "resumed by" in running.logs
        assert running.output["version"].startswith(f"{DEST}:")
        listed = {t.id: t.status for t in c.trainings.list().results}
        assert set(listed) == {running.id, queued.id}
        queued.reload()
        assert queued.status in ("starting", "processing")  # it still runs after the restart
        queued.cancel()
        assert queued.status == "canceled"
    finally:
        server.stop()
