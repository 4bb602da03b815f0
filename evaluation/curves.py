"""Loss and perplexity curves of a training, as CSV and PNG.

Two sources, both written by AudioCraft's solver: `history.json` of the experiment (one entry
per epoch: the train and held-out `ce`/`ppl`), and the solver's progress lines in the training
log (`Train | Epoch E | i/N | ... | ce X | ppl Y`: the running mean of the epoch so far, every
`logging.log_updates` updates). A resumed run logs some steps again; the last line wins.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CSV_NAME = "curves/loss.csv"
PNG_NAME = "curves/loss.png"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STEP = re.compile(
    r"\b(?P<split>Train|Valid) \| Epoch (?P<epoch>\d+) \| (?P<step>\d+)/(?P<total>\d+) \|"
    r".*?\| ce (?P<ce>[-+0-9.eE]+) \| ppl (?P<ppl>[-+0-9.eEinf]+)"
)


@dataclass(frozen=True)
class Point:
    kind: str  # "step" (a logged update) or "epoch" (an epoch's summary)
    split: str  # "train" | "valid"
    epoch: int
    update: int  # updates done when the value was logged (epoch summaries: the epoch's end)
    ce: float
    ppl: float


def step_points(log_lines: Iterable[str], updates_per_epoch: int) -> list[Point]:
    """The solver's logged training steps (the last line wins for a step logged twice)."""
    found: dict[tuple[str, int, int], Point] = {}
    for raw in log_lines:
        match = _STEP.search(_ANSI.sub("", raw))
        if match is None or match["split"] != "Train":
            continue
        epoch, step = int(match["epoch"]), int(match["step"])
        found[("train", epoch, step)] = Point(
            "step", "train", epoch, (epoch - 1) * updates_per_epoch + step,
            float(match["ce"]), float(match["ppl"]),
        )  # fmt: skip
    return sorted(found.values(), key=lambda p: (p.update, p.split))


def epoch_points(history: list[Mapping[str, Any]], updates_per_epoch: int) -> list[Point]:
    """Per-epoch train and held-out `ce`/`ppl` from the experiment's history."""
    points: list[Point] = []
    for index, entry in enumerate(history, start=1):
        for split in ("train", "valid"):
            metrics = entry.get(split) or {}
            if "ce" in metrics:
                ce = float(metrics["ce"])
                ppl = float(metrics.get("ppl", math.exp(ce)))
                points.append(Point("epoch", split, index, index * updates_per_epoch, ce, ppl))
    return points


def write_csv(points: list[Point], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "split", "epoch", "update", "ce", "ppl"])
        for p in points:
            writer.writerow([p.kind, p.split, p.epoch, p.update, f"{p.ce:.6g}", f"{p.ppl:.6g}"])
    return path


def write_png(points: list[Point], path: Path, title: str) -> Path:
    """Cross-entropy (left) and perplexity (right) against updates; held-out per epoch."""
    import matplotlib

    matplotlib.use("Agg")  # headless
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    series = (
        ("step", "train", "train (logged steps)", ".-", 0.5),
        ("epoch", "train", "train (epoch)", "o-", 1.0),
        ("epoch", "valid", "held-out (epoch)", "s-", 1.0),
    )
    for ax, metric in zip(axes, ("ce", "ppl"), strict=True):
        for kind, split, label, style, alpha in series:
            chosen = [p for p in points if p.kind == kind and p.split == split]
            if chosen:
                ax.plot(
                    [p.update for p in chosen], [getattr(p, metric) for p in chosen], style,
                    label=label, alpha=alpha,
                )  # fmt: skip
        ax.set_xlabel("updates")
        ax.set_ylabel("cross-entropy (nats)" if metric == "ce" else "perplexity")
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def write_curves(
    history: list[Mapping[str, Any]],
    training_log: Path,
    updates_per_epoch: int,
    out_dir: Path,
    title: str,
) -> dict[str, str]:
    """Write `curves/loss.csv` and `curves/loss.png` under `out_dir`; return their tar names."""
    lines = training_log.read_text(errors="replace").splitlines() if training_log.is_file() else []
    points = step_points(lines, updates_per_epoch) + epoch_points(history, updates_per_epoch)
    write_csv(points, out_dir / CSV_NAME)
    write_png(points, out_dir / PNG_NAME, title)
    return {"csv": CSV_NAME, "png": PNG_NAME}
