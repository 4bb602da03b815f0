"""Tensor helpers of gradient accumulation: exact loss shares and detached conditions.

MusicGen's cross-entropy (`MusicGenSolver._compute_cross_entropy`) is, for a batch, the mean
over codebooks k of the mean over that codebook's valid (unmasked) tokens:

    ce = 1/K Σ_k (Σ_{valid tokens t of k} ce_t) / N_k

with N_k the valid tokens of codebook k in the whole per-process batch. Split into
micro-batches m, the same sum is Σ_m 1/K Σ_k (Σ_{t in m} ce_t) / N_k: each micro-batch's
summed cross-entropy divided by the *whole batch's* count, not its own. Its gradients add up
to the full batch's exactly, and so do the logged values, whatever the padding of each sample.

The conditions (text/chroma embeddings) are computed once for the whole batch; each
micro-batch gets a detached slice as a leaf, whose gradients are collected and sent back
through the conditioner in one backward after the last micro-batch.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

ConditionTensors = dict[str, tuple[torch.Tensor, torch.Tensor]]


def valid_counts(padding_masks: list[torch.Tensor], pattern_mask: torch.Tensor) -> torch.Tensor:
    """N_k: valid tokens per codebook over every micro-batch ([B, K, T] masks; [K, T] pattern)."""
    total = torch.zeros(pattern_mask.shape[0], device=pattern_mask.device)
    for padding in padding_masks:
        total += (padding & pattern_mask[None]).sum(dim=(0, 2)).to(total.dtype)
    return total


def shared_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, counts: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """This micro-batch's share of the batch cross-entropy, and of each codebook's (detached).

    Args:
        logits: [B, K, T, card].
        targets: [B, K, T].
        mask: [B, K, T], valid targets.
        counts: [K], valid targets of codebook k in the whole batch (valid_counts).
    """
    _, n_q, _ = targets.shape
    assert logits.shape[:-1] == targets.shape and mask.shape == targets.shape
    ce = torch.zeros([], device=targets.device)
    per_codebook: list[torch.Tensor] = []
    for k in range(n_q):
        logits_k = logits[:, k, ...].contiguous().view(-1, logits.size(-1))
        targets_k = targets[:, k, ...].contiguous().view(-1)
        mask_k = mask[:, k, ...].contiguous().view(-1)
        summed = F.cross_entropy(logits_k[mask_k], targets_k[mask_k], reduction="sum")
        q_ce = summed / counts[k].clamp_min(1)
        ce = ce + q_ce
        per_codebook.append(q_ce.detach())
    return ce / n_q, per_codebook


def condition_slice(conditions: ConditionTensors, start: int, stop: int) -> ConditionTensors:
    """Samples start:stop of every condition, detached; leaves that collect their gradient."""
    out: ConditionTensors = {}
    for name, (embeds, mask) in conditions.items():
        part = embeds[start:stop].detach()
        if embeds.requires_grad and torch.is_grad_enabled():
            part.requires_grad_(True)
        out[name] = (part, mask[start:stop])
    return out


def backward_conditions(conditions: ConditionTensors, parts: list[ConditionTensors]) -> None:
    """Send the micro-batches' gradients of the condition slices back through the conditioner."""
    tensors, grads = [], []
    for name, (embeds, _) in conditions.items():
        if not embeds.requires_grad:
            continue
        pieces = [_grad_or_zeros(p[name][0]) for p in parts]
        tensors.append(embeds)
        grads.append(torch.cat(pieces).to(embeds.dtype))
    if tensors:
        torch.autograd.backward(tensors, grads)


def _grad_or_zeros(leaf: torch.Tensor) -> torch.Tensor:
    return leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
