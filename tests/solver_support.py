"""Short solver runs on CPU: AudioCraft's MusicGen solver through Dora, the tiny `debug` model.

The data has chunks of different lengths, one source file per chunk, so samples carry
different numbers of valid (unpadded) tokens. Segments are 5 s instead of 30 (the solver's cost
is its audio; nothing these tests check depends on the length).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from musicgen_ft.inputs import TrainInputs
from musicgen_ft.types import Chunk
from musicgen_ft.variants import get_variant
from training.launch import Topology, run_training
from training.manifest import write_manifest
from training.overrides import TrainPlan, build_overrides
from training.solver import STEPS_FILE

RATE = 32000
SEGMENT = 5.0
DURATIONS = (5.0, 1.2, 3.7, 2.2, 5.0, 0.8, 4.3, 2.9, 1.7, 5.0)
UPDATES, EPOCHS, BATCH = 3, 2, 8


def write_dataset(root: Path) -> Path:
    """Ten tone-and-noise chunks with captions; returns the manifest's `egs` folder."""
    rng = np.random.default_rng(7)
    chunks = []
    for n, seconds in enumerate(DURATIONS):
        t = np.arange(int(seconds * RATE)) / RATE
        wav = 0.3 * np.sin(2 * np.pi * (110 + 40 * n) * t) + 0.05 * rng.standard_normal(t.size)
        path = root / "chunks" / f"song{n:02d}-000.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), wav.astype(np.float32), RATE)
        chunks.append(
            Chunk(path, f"song{n:02d}.wav", 0, 0.0, seconds, RATE, 1, caption=f"tone {n % 4}")
        )
    from labeling.merge import chunk_info

    infos = {c.chunk_id: chunk_info(c, {}, {}, None) for c in chunks}
    return write_manifest(chunks, infos, root / "manifest", seed=0).egs_dir


@dataclass(frozen=True)
class Run:
    steps: list[dict[str, Any]]  # train_steps.jsonl
    weights: dict[str, torch.Tensor]  # the last state of the LM
    log: str  # rank 0's solver log
    xp: Path  # the experiment folder


def train(
    egs: Path,
    base: Path,
    out: Path,
    processes: int = 1,
    micro: int | None = None,
    token_cache: Path | None = None,
    epochs: int = EPOCHS,
    checkpointing: bool = False,
    **changes: Any,
) -> Run:
    """Train; `changes` override TrainInputs fields."""
    values: dict[str, Any] = dict(
        dataset_path="d",
        model_version="debug",
        epochs=epochs,
        updates_per_epoch=UPDATES,
        batch_size=BATCH,
        optimizer="adamw",
        lr=1e-3,
        warmup=2,
    )
    values.update(changes)
    inputs = TrainInputs(**values)
    plan = TrainPlan(
        inputs=inputs,
        variant=get_variant("debug"),
        base_model_dir=base,
        egs_dir=egs,
        batch_size=BATCH,
        world_size=processes,
        device="cpu",
        valid_examples=1,
        num_workers=0,
        micro_batch=micro,
        token_cache=token_cache,
        checkpointing=checkpointing,
    )
    overrides = [
        f"dataset.segment_duration={SEGMENT:g}" if o.startswith("dataset.segment_duration=") else o
        for o in build_overrides(plan)
    ]
    # Adam divides by the gradient's RMS: a weight whose true gradient is zero (the debug LM's
    # cross-attention queries and keys, over a single condition token) would move by float
    # noise scaled up to a share of the lr. eps=1e-6 (1e-8 by default) keeps that noise below
    # the tolerance and leaves the real gradients (~1e-3 per weight) as they are.
    overrides.append("optim.adam.eps=1e-6")
    # Two processes through torchrun: it imports the solver once per process, Dora once more.
    topology = Topology(
        device="cpu", world_size=processes, launcher="torchrun" if processes > 1 else "dora"
    )
    xp = run_training(overrides, topology, out / "dora", out / "training.log")
    steps = [json.loads(line) for line in (xp / STEPS_FILE).read_text().splitlines()]
    state = torch.load(xp / "checkpoint.th", map_location="cpu", weights_only=False)
    return Run(steps, state["model"], (xp / "solver.log.0").read_text(), xp)
