"""The one rule for numeric precision and kernels; it returns Hydra overrides.

- CUDA with bfloat16 (Ampere and later): bf16 autocast, no grad scaler.
- CUDA without bfloat16: fp16 autocast; AudioCraft's solver adds its GradScaler for float16.
- CPU: float32, unchanged (no autocast).
- Fused AdamW (`optim.adam.fused`, passed by AudioCraft's optimizer builder to torch's Adam /
  AdamW) on CUDA; D-Adapt Adam takes no such option.
- Attention: AudioCraft's `memory_efficient` path with the `torch` backend, i.e.
  `torch.nn.functional.scaled_dot_product_attention` (flash / memory-efficient kernels), never
  xformers.
- `MUSICGEN_FT_COMPILE=1`: the LM's transformer is compiled with `torch.compile` (in place, so
  checkpoints keep their keys; training/solver.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from musicgen_ft.errors import InputError

COMPILE_ENV = "MUSICGEN_FT_COMPILE"
FUSED_OPTIMIZERS = ("adam", "adamw")


@dataclass(frozen=True)
class DeviceCaps:
    """What the training device supports (stubbed in unit tests)."""

    device: str  # "cuda" or "cpu"
    bf16: bool = False


def device_caps(device: str) -> DeviceCaps:
    if device != "cuda":
        return DeviceCaps(device=device)
    import torch

    if not torch.cuda.is_available():  # the GPUs are elsewhere (a SLURM submit host)
        return DeviceCaps(device="cuda", bf16=False)  # fp16: what every GPU runs
    return DeviceCaps(device="cuda", bf16=bool(torch.cuda.is_bf16_supported()))


@dataclass(frozen=True)
class Precision:
    """How a fine-tune computes: autocast dtype (None: float32), scaler, kernels."""

    autocast: str | None
    fused_optimizer: bool = False
    compile: bool = False

    @property
    def grad_scaler(self) -> bool:
        return self.autocast == "float16"

    def overrides(self) -> list[str]:
        out = ["autocast=false"] if self.autocast is None else [
            "autocast=true",
            f"autocast_dtype={self.autocast}",
        ]  # fmt: skip
        if self.fused_optimizer:
            out.append("++optim.adam.fused=true")
        out += ["transformer_lm.memory_efficient=true", "efficient_attention_backend=torch"]
        if self.compile:
            out.append("+musicgen_ft_compile=true")
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "autocast": self.autocast or "float32",
            "grad_scaler": self.grad_scaler,
            "fused_optimizer": self.fused_optimizer,
            "attention": "torch sdpa",
            "compile": self.compile,
        }


def compile_requested(env: Mapping[str, str] | None = None) -> bool:
    raw = (os.environ if env is None else env).get(COMPILE_ENV, "0").strip()
    if raw not in ("0", "1", ""):
        raise InputError(COMPILE_ENV, f"{COMPILE_ENV}={raw!r} must be 0 or 1")
    return raw == "1"


def choose_precision(
    caps: DeviceCaps, optimizer: str, env: Mapping[str, str] | None = None
) -> Precision:
    """The precision rule above, for this device and optimizer."""
    if caps.device != "cuda":
        return Precision(autocast=None, compile=compile_requested(env))
    return Precision(
        autocast="bfloat16" if caps.bf16 else "float16",
        fused_optimizer=optimizer in FUSED_OPTIMIZERS,
        compile=compile_requested(env),
    )
