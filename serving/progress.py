"""A training's progress read from its log: the stage it is in, steps done of the total, an
ETA, and the loss points so far. The one place that knows the trainer's log lines.

The trainer logs `[stage] started` / `[stage] done in …` around each pipeline stage and one
`[train] Train | Epoch E | k/N | … | ce X` line per logged update (AudioCraft's format).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

STAGES = ("check", "fetch", "prepare", "vocals", "labels", "manifest", "train", "export", "samples")
_STAGE = re.compile(r"^(\d\d:\d\d:\d\d) \w+ \[(\w+)\] (started|done in)", re.M)
_STEP = re.compile(
    r"^(\d\d:\d\d:\d\d) \w+ \[train\] Train \| Epoch (\d+) \| (\d+)/(\d+) \|.*?\| ce ([\d.]+)", re.M
)
_EPOCH = re.compile(r"\[train\] (Train|Valid) Summary \| Epoch (\d+) \|.*?ce=([\d.]+)")


@dataclass(frozen=True)
class Point:
    step: int
    ce: float


@dataclass
class Progress:
    stage: str | None = None  # the stage running now (None: not started, or all done)
    stages_done: list[str] = field(default_factory=list)
    step: int = 0  # optimizer updates done, over all epochs
    total: int | None = None  # updates the job will make
    eta_s: float | None = None
    train: list[Point] = field(default_factory=list)  # per logged update
    epochs: list[dict[str, float]] = field(default_factory=list)  # {epoch, train, valid}

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _seconds(clock: str) -> int:
    t = datetime.strptime(clock, "%H:%M:%S")
    return t.hour * 3600 + t.minute * 60 + t.second


def read_progress(logs: str, inputs: dict[str, Any]) -> Progress:
    """Progress of a training from its log text and its inputs (for the total)."""
    progress = Progress()
    for _, stage, what in _STAGE.findall(logs):
        if what == "started":
            progress.stage = stage
        else:
            progress.stages_done.append(stage)
            if progress.stage == stage:
                progress.stage = None
    epochs = inputs.get("epochs")
    per_epoch: int | None = None
    times: list[tuple[int, int]] = []  # (clock seconds, step)
    for clock, epoch, k, n, ce in _STEP.findall(logs):
        per_epoch = int(n)
        step = (int(epoch) - 1) * per_epoch + int(k)
        progress.train.append(Point(step, float(ce)))
        times.append((_seconds(clock), step))
    if progress.train:
        progress.step = progress.train[-1].step
    if per_epoch is not None and isinstance(epochs, int):
        progress.total = per_epoch * epochs
    elif isinstance(epochs, int) and isinstance(inputs.get("updates_per_epoch"), int):
        progress.total = epochs * inputs["updates_per_epoch"]
    by_epoch: dict[int, dict[str, float]] = {}
    for kind, epoch, ce in _EPOCH.findall(logs):
        entry = by_epoch.setdefault(int(epoch), {"epoch": int(epoch)})
        entry["train" if kind == "Train" else "valid"] = float(ce)
    progress.epochs = [by_epoch[e] for e in sorted(by_epoch)]
    finished = [e["epoch"] for e in progress.epochs if "train" in e]
    if finished and per_epoch is not None:  # the last update of an epoch is not logged
        progress.step = max(progress.step, int(max(finished)) * per_epoch)
    if "train" in progress.stages_done:
        progress.step = progress.total or progress.step
        return progress
    progress.eta_s = _eta(times, progress.total)
    return progress


def _eta(times: list[tuple[int, int]], total: int | None) -> float | None:
    """Seconds left at the rate of the updates logged so far (None until two are logged)."""
    if total is None or len(times) < 2:
        return None
    (t0, s0), (t1, s1) = times[0], times[-1]
    elapsed = (t1 - t0) % 86400
    if s1 <= s0 or elapsed <= 0:
        return None
    return round((total - s1) * elapsed / (s1 - s0), 1)
