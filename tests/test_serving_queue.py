"""One queue across processes (and machines) on a real PostgreSQL server: an API front with
no worker, two `musicgen-ft worker` processes, the official client. Trainings are claimed
once, run side by side, and a killed worker's training is resumed by the other."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from postgres_support import Postgres
from serving_support import (
    REPO,
    VENV_BIN,
    Server,
    claim_in_parallel,
    client,
    trainer_pids,
    wait_until,
    write_fake_trainer,
)

from serving.store import Store

pytestmark = pytest.mark.slow
DEST = "alice/tuned"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = Postgres().start()
    yield server
    server.stop()


class WorkerProcess:
    """`musicgen-ft worker`, the way it runs on each GPU machine of a studio."""

    def __init__(self, tmp: Path, db: str, data_dir: Path, trainer: Path, n: int) -> None:
        self.log = tmp / f"worker-{n}.log"
        argv = [
            str(VENV_BIN / "musicgen-ft"), "worker", "--db", db, "--data_dir", str(data_dir),
            "--trainer", f"{sys.executable} {trainer}", "--stale_s", "3",
            "--allow_private_urls",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


def test_claims_on_postgres_hand_each_training_to_one_worker(postgres: Postgres) -> None:
    url = postgres.database("claims")
    store = Store(url)
    ids = set()
    for n in range(16):
        row = store.add_training(
            id=f"claim-{n}", token_id="tok", model="o/m", version="v", destination="a/b",
            input={}, webhook=None, webhook_events_filter=None, base_url="http://h",
        )  # fmt: skip
        ids.add(row.id)
    got = claim_in_parallel(url)
    claimed = [i for rows in got.values() for i in rows]
    assert sorted(claimed) == sorted(ids)
    assert sum(1 for rows in got.values() if rows) >= 2  # really shared, not serialised away
    store.close()


def _started_by(logs: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"(?:started|resumed) by [^:\s]+:(\d+):", logs)]


def test_two_workers_share_the_queue_and_resume_a_killed_ones_training(
    tmp_path: Path, postgres: Postgres
) -> None:
    fake = write_fake_trainer(tmp_path)
    url = postgres.database("studio")
    shared = tmp_path / "shared"  # the storage every machine of the queue mounts
    api = Server(tmp_path, db=url, data_dir=shared, extra=["--no_worker"]).start()
    workers = [WorkerProcess(tmp_path, url, shared, fake, n) for n in range(2)]
    try:
        c = client(api)
        c.models.create("alice", "tuned", visibility="private", hardware="gpu")
        trainer = c.models.list().results[0]

        def start(dataset: str) -> Any:
            return c.trainings.create(
                model=trainer.id, version=trainer.latest_version.id, destination=DEST,
                input={"dataset_path": f"http://127.0.0.1:1/{dataset}", "model_version": "debug"},
            )  # fmt: skip

        first, second = start("resumable-1.zip"), start("resumable-2.zip")

        def both_at_step(n: int) -> bool:
            for t in (first, second):
                t.reload()
            return all(f"[train] step {n}/40" in (t.logs or "") for t in (first, second))

        wait_until(lambda: both_at_step(3), 60, "both trainings to run at once")
        owners = {t.id: _started_by(t.logs) for t in (first, second)}
        pids = {w.proc.pid for w in workers}
        assert {o[0] for o in owners.values()} == pids, owners  # one each, none twice
        victim = next(w for w in workers if w.proc.pid == owners[first.id][0])
        survivor = next(w for w in workers if w is not victim)

        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        out_dir = shared / "trainings" / first.id / "output"
        # its trainer dies with it (parent-death signal): nothing writes on unowned
        wait_until(lambda: not trainer_pids(out_dir), 5, "the dead worker's trainer to stop")

        for t in (first, second):
            wait_until(lambda t=t: (t.reload(), t.status == "succeeded")[1], 90, f"{t.id}")
        assert _started_by(first.logs) == [victim.proc.pid, survivor.proc.pid]
        assert "resuming from the checkpoint" in first.logs
        assert first.logs.count("[train] step 1/40") == 1  # continued, not restarted
        assert _started_by(second.logs) == [survivor.proc.pid]
        assert len(c.models.get(DEST).versions.list().results) == 2

        # a cancel on the API front reaches the worker through the database
        third = start("slow.zip")
        wait_until(lambda: (third.reload(), "[train] step 3" in (third.logs or ""))[1], 30, "run")
        third.cancel()
        assert third.status == "canceled"
        third_out = shared / "trainings" / third.id / "output"
        wait_until(lambda: not trainer_pids(third_out), 15, "the canceled trainer to stop")
    finally:
        for w in workers:
            w.stop()
        api.stop()
    assert "Traceback" not in "".join(w.log.read_text() for w in workers)


def test_a_postgres_db_needs_a_shared_data_dir(postgres: Postgres) -> None:
    run = subprocess.run(
        [str(VENV_BIN / "musicgen-ft"), "worker", "--db", postgres.database("nodata")],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )  # fmt: skip
    assert run.returncode != 0
    assert "--data_dir" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
