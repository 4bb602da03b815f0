"""The batch plan: global batch = micro-batch × processes × accumulation.

The global batch is what the user asked for (`batch_size`), honoured on any number of
processes: it is split evenly over the processes (rounded down to a multiple of them, with a
note), and each process's share is split into `accumulation` micro-batches of at most
`micro_batch` samples, which is what one device holds at once (training/memory.py, or
MUSICGEN_FT_MAX_MICRO_BATCH=N). The solver (training/solver.py) runs forward and backward per
micro-batch and steps once, so the update is the full batch's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from musicgen_ft.errors import InputError
from musicgen_ft.variants import Variant
from training import memory

MAX_MICRO_ENV = "MUSICGEN_FT_MAX_MICRO_BATCH"


@dataclass(frozen=True)
class BatchPlan:
    """How the global batch is computed.

    Attributes:
        global_batch: Samples per optimizer step, over all processes.
        micro_batch: Most samples one process computes at once.
        processes: Training processes (GPUs, or CPU processes).
        accumulation: Micro-batches per process and optimizer step.
        notes: Adjustments and warnings, for the log and the metadata.
        source: Where the micro-batch limit came from.
        checkpointing: Whether the LM recomputes its activations in the backward (AudioCraft's
            `transformer_lm.checkpointing=torch`): on when not even one sample fits without.
    """

    global_batch: int
    micro_batch: int
    processes: int
    accumulation: int
    notes: tuple[str, ...]
    source: str
    checkpointing: bool = False

    @property
    def per_process(self) -> int:
        return self.global_batch // self.processes

    def describe(self) -> str:
        return (
            f"global batch {self.global_batch} = {self.processes} process(es) x "
            f"{self.per_process} per process, in {self.accumulation} micro-batch(es) of at "
            f"most {self.micro_batch} ({self.source})"
            + (", activation checkpointing" if self.checkpointing else "")
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "global_batch": self.global_batch,
            "micro_batch": self.micro_batch,
            "processes": self.processes,
            "accumulation": self.accumulation,
            "per_process": self.per_process,
            "source": self.source,
            "checkpointing": self.checkpointing,
            "notes": list(self.notes),
        }


def max_micro_batch(env: Mapping[str, str] | None = None) -> int | None:
    """MUSICGEN_FT_MAX_MICRO_BATCH, or None when unset."""
    raw = (os.environ if env is None else env).get(MAX_MICRO_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(MAX_MICRO_ENV, f"{MAX_MICRO_ENV}={raw!r} must be an integer >= 1")
    return int(raw)


def _device_limit(
    variant: Variant,
    device_bytes: int,
    estimate: memory.MemoryEstimate,
    checkpointed: memory.MemoryEstimate,
    lora: bool,
) -> tuple[int, bool]:
    """(micro-batch, activation checkpointing) on a device of `device_bytes`."""
    fits = estimate.micro_batch(device_bytes)
    if fits >= 1:
        return fits, False
    fits = checkpointed.micro_batch(device_bytes)
    if fits >= 1:
        return fits, True
    hint = "" if lora else ", train LoRA adapters (lora_rank=16)"
    raise InputError(
        "model_version",
        f"{variant.name} needs about {checkpointed.static / memory.GIB:.1f} GiB per GPU before "
        f"any sample (weights, gradients, optimizer state) and "
        f"{checkpointed.per_sample / memory.GIB:.1f} GiB per sample even with activation "
        f"checkpointing, more than the {memory.SAFETY * device_bytes / memory.GIB:.1f} GiB "
        f"usable of this GPU's {device_bytes / memory.GIB:.1f} GiB: use GPUs with more "
        f"memory{hint}, a smaller model_version, or set {MAX_MICRO_ENV}=1 to try anyway",
    )


def resolve_batch_plan(
    requested: int,
    processes: int,
    variant: Variant,
    *,
    device: str,
    optimizer: str,
    device_bytes: int | None = None,
    autocast: bool = True,
    ema: bool = False,
    lora: bool = False,
    env: Mapping[str, str] | None = None,
) -> BatchPlan:
    """Plan the batch of `requested` samples over `processes` processes.

    Args:
        requested: The global batch the user asked for.
        processes: Training processes (world size).
        variant: The base model (its shape sizes the memory model).
        device: "cuda" or "cpu".
        optimizer: The optimizer (its state is part of the memory per parameter).
        device_bytes: Memory of one GPU (training/memory.device_memory); None: no limit.
        autocast: Whether activations are 16-bit.
        ema: Whether an EMA copy of the weights is kept on the device.
        lora: Whether only LoRA adapters train (frozen weights need no gradient or state).
        env: The environment (MUSICGEN_FT_MAX_MICRO_BATCH); default os.environ.

    Raises InputError when the batch is smaller than the processes, or when not even one
    sample fits the GPU (unless MUSICGEN_FT_MAX_MICRO_BATCH says how many to try).
    """
    noun = "GPUs" if device == "cuda" else "training processes"
    if requested < processes:
        raise InputError(
            "batch_size",
            f"batch_size={requested} is smaller than the {processes} {noun} found; "
            f"use {processes} or a multiple of it",
        )
    notes: list[str] = []
    global_batch = requested
    if global_batch % processes:
        global_batch = (requested // processes) * processes
        notes.append(
            f"batch_size={requested} does not divide by the {processes} training processes; "
            f"using {global_batch}"
        )
    per_process = global_batch // processes

    override = max_micro_batch(env)
    estimate = memory.estimate(variant, optimizer, autocast=autocast, ema=ema, lora=lora)
    checkpointing = False
    if override is not None:
        limit, source = override, f"{MAX_MICRO_ENV}={override}"
        if device_bytes is not None and override > estimate.micro_batch(device_bytes):
            notes.append(
                f"{MAX_MICRO_ENV}={override} is above the "
                f"{estimate.micro_batch(device_bytes)} samples the memory model fits on this "
                f"GPU ({device_bytes / memory.GIB:.0f} GiB); it may run out of memory"
            )
    elif device_bytes is None:
        limit, source = per_process, f"{device}: no memory limit"
        if device == "cuda":  # the GPUs are elsewhere (a SLURM submit host)
            source = "GPU memory unknown here: no limit"
            notes.append(
                f"the training GPUs are not visible here, so their memory is unknown: each "
                f"process computes its {per_process} samples at once; set {MAX_MICRO_ENV}=N "
                "to split them"
            )
    else:
        checkpointed = memory.estimate(
            variant, optimizer, autocast=autocast, ema=ema, lora=lora, checkpointing=True
        )
        limit, checkpointing = _device_limit(variant, device_bytes, estimate, checkpointed, lora)
        if checkpointing:
            notes.append(
                f"not one sample fits this GPU with every activation kept: activation "
                f"checkpointing on ({limit} per micro-batch, about a third more compute)"
            )
        source = f"memory model, {device_bytes / memory.GIB:.0f} GiB per GPU"

    accumulation = math.ceil(per_process / min(limit, per_process))
    micro = math.ceil(per_process / accumulation)  # balanced: sizes differ by at most one
    accumulation = math.ceil(per_process / micro)
    return BatchPlan(
        global_batch=global_batch,
        micro_batch=micro,
        processes=processes,
        accumulation=accumulation,
        notes=tuple(notes),
        source=source,
        checkpointing=checkpointing,
    )


def micro_sizes(batch: int, micro: int) -> list[int]:
    """Split `batch` samples into ceil(batch / micro) parts whose sizes differ by at most 1."""
    parts = max(1, math.ceil(batch / micro))
    base, extra = divmod(batch, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
