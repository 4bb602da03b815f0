"""Memory model of a MusicGen fine-tune: how many samples one GPU holds at once.

Derived from the LM's shape, not measured (no GPU figure exists yet for these shapes; override
with MUSICGEN_FT_MAX_MICRO_BATCH=N). Per training process:

    static     = P × (optimizer bytes per parameter) + frozen models + workspace
    per sample = F × (L × D × ACT + K × V × LOGIT)
    micro      = floor((SAFETY × GPU memory − static) / per sample)

with P the LM's parameters (per layer: self-attention 4D², cross-attention 4D², feed-forward
2·h·D²; plus K embeddings of V+1 rows and K output heads of V columns), F the frames of one
segment (30 s × 50 Hz, plus the delay pattern's K steps), L layers, D the model dimension, K
codebooks, V the codebook size, h the feed-forward scale.

- Optimizer bytes per parameter: fp32 weight 4 + gradient 4 + state (AdamW 8: two moments;
  D-Adapt Adam 12: three), + 2 for the 16-bit weight copies autocast keeps during a step.
- ACT, activation bytes kept for the backward per layer, token and channel, 16-bit autocast:
  34 for a self-attention + feed-forward block without the attention scores (Korthikanti et
  al. 2022, "Reducing activation recomputation", with SDPA's fused kernels that never store the
  T×T matrix), less 2 for the dropout masks MusicGen does not use, plus 12 for the
  cross-attention block (query, output, norm): 44. Twice that in float32.
- LOGIT, bytes per output logit: 16-bit logits 2 + float32 log-softmax 4 and its gradient 4 +
  the masked copy the cross-entropy takes 2: 12 (float32 logits: 16).
- Without SDPA the attention scores add 5·heads·F² bytes per layer (the same paper); every
  fine-tune here uses SDPA (training/precision.py), so `heads` only counts in that case.
- Frozen models: EnCodec 32 kHz (~59 M params, fp32) 0.25 GiB, the T5-base encoder 0.45 GiB,
  the melody conditioner's Demucs 0.2 GiB; CUDA context and cuBLAS/cuDNN workspaces 1.5 GiB.
- LoRA (training/lora.py): the LM's own weights are frozen, so they cost their fp32 copy and
  the autocast copy only (6 bytes, no gradient or optimizer state); the adapters are a
  fraction of a percent of the parameters and are left out. The activations are the same (the
  backward still runs through every layer).
- Activation checkpointing (AudioCraft's `transformer_lm.checkpointing=torch`): each layer
  keeps only its input (D values per token, 2 bytes in 16-bit) and recomputes the rest in the
  backward, one layer at a time: per token L × D × 2 + D × ACT instead of L × D × ACT, for
  about a third more compute. The batch plan (training/batching.py) turns it on only when not
  even one sample fits without it.
- SAFETY = 0.85 of the device's memory: the allocator's fragmentation and cache, NCCL buffers,
  and the transient peaks of EnCodec's encoder (no gradient) before the LM's forward.

On CPU there is no limit: the micro-batch is the whole per-process batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from musicgen_ft.variants import Variant

GIB = 1024**3
SEGMENT_SECONDS = 30
FRAME_RATE = 50  # EnCodec 32 kHz: 640 samples per frame (the debug model has 25: an overestimate)
SAFETY = 0.85
ACT_BYTES_16 = 44
LOGIT_BYTES_16 = 12
LOGIT_BYTES_32 = 16
AUTOCAST_WEIGHT_BYTES = 2
OPTIMIZER_STATE_BYTES = {"adam": 8, "adamw": 8, "dadam": 12}
COMPRESSION_BYTES = int(0.25 * GIB)
T5_BYTES = int(0.45 * GIB)
MELODY_BYTES = int(0.2 * GIB)
WORKSPACE_BYTES = int(1.5 * GIB)

# AudioCraft's `model/lm/model_scale` groups: (dim, layers, heads).
MODEL_SCALES: dict[str, tuple[int, int, int]] = {
    "debug": (64, 2, 4),  # this project's config/model/lm/model_scale/debug.yaml
    "xsmall": (64, 2, 2),  # AudioCraft's config/model/lm/model_scale/xsmall.yaml
    "small": (1024, 24, 16),
    "base": (1024, 24, 16),
    "medium": (1536, 48, 24),
    "large": (2048, 48, 32),
}
_SCALE_KEY = "model/lm/model_scale="


@dataclass(frozen=True)
class LMShape:
    """The dimensions of a MusicGen LM that its memory depends on."""

    dim: int
    layers: int
    heads: int
    n_q: int
    card: int
    hidden_scale: int = 4

    @property
    def params(self) -> int:
        per_layer = (4 + 4 + 2 * self.hidden_scale) * self.dim**2
        embeddings = self.n_q * (self.card + 1) * self.dim
        heads = self.n_q * self.card * self.dim
        return self.layers * per_layer + embeddings + heads

    @property
    def frames(self) -> int:
        return SEGMENT_SECONDS * FRAME_RATE + self.n_q


def lm_shape(variant: Variant) -> LMShape:
    """The variant's LM shape, from its `model/lm/model_scale` override."""
    scales = [o[len(_SCALE_KEY) :] for o in variant.lm_overrides if o.startswith(_SCALE_KEY)]
    if not scales or scales[-1] not in MODEL_SCALES:
        raise ValueError(f"{variant.name}: no known model_scale in {variant.lm_overrides}")
    dim, layers, heads = MODEL_SCALES[scales[-1]]
    return LMShape(dim=dim, layers=layers, heads=heads, n_q=variant.n_q, card=variant.card)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per training process: before any sample (`static`) and per sample."""

    static: int
    per_sample: int

    def micro_batch(self, device_bytes: int) -> int:
        """Samples that fit at once on a device of `device_bytes` (0: not even one)."""
        free = SAFETY * device_bytes - self.static
        return max(0, math.floor(free / self.per_sample))


def estimate(
    variant: Variant,
    optimizer: str,
    *,
    autocast: bool = True,
    sdpa: bool = True,
    ema: bool = False,
    lora: bool = False,
    checkpointing: bool = False,
) -> MemoryEstimate:
    """The memory model above for one variant, optimizer, precision and memory settings."""
    shape = lm_shape(variant)
    per_param = 4 if lora else 4 + 4 + OPTIMIZER_STATE_BYTES.get(optimizer, 12)
    if autocast:
        per_param += AUTOCAST_WEIGHT_BYTES
    if ema:
        per_param += 4
    frozen = COMPRESSION_BYTES + WORKSPACE_BYTES
    if variant.text_conditioner:
        frozen += T5_BYTES
    if variant.melody:
        frozen += MELODY_BYTES
    act = ACT_BYTES_16 if autocast else 2 * ACT_BYTES_16
    if checkpointing:
        per_token = shape.layers * shape.dim * (2 if autocast else 4) + shape.dim * act
    else:
        per_token = shape.layers * shape.dim * act
    per_token += shape.n_q * shape.card * (LOGIT_BYTES_16 if autocast else LOGIT_BYTES_32)
    per_sample = shape.frames * per_token
    if not sdpa:
        per_sample += shape.layers * 5 * shape.heads * shape.frames**2 * (1 if autocast else 2)
    return MemoryEstimate(static=shape.params * per_param + frozen, per_sample=per_sample)


def device_memory(device: str) -> int | None:
    """Total memory of the smallest visible GPU in bytes; None on CPU (no limit)."""
    if device != "cuda":
        return None
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        return None
    return min(torch.cuda.get_device_properties(i).total_memory for i in range(count))
