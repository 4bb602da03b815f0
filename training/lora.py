"""LoRA inside AudioCraft's LM: low-rank updates of the transformer's projections, merged on export.

With `lora_rank=r`, every weight matrix W of the attention (self and cross: the fused q/k/v
input projection and the output projection) and of the feed-forward layers of every
transformer layer becomes W + B·A, with A (r × in) and B (out × r) the only trained
parameters: the embeddings, the output heads, the norms, the conditioner's projection and W
itself are frozen. B starts at zero, so training starts from the base model exactly. The update
is applied through `torch.nn.utils.parametrize`, so AudioCraft's attention, its checkpointing
of the solver state and its best-state tracking all run unchanged.

The fine-tune's `state_dict.bin` holds the merged weights (W + B·A under the plain names: stock
`MusicGen.get_pretrained` loads it); `lora_adapter.safetensors` holds A and B alone, with the
rank and the targets in its metadata.
"""

from __future__ import annotations

import math
import re
import typing as tp

import torch
from torch import nn
from torch.nn.utils import parametrize

ADAPTER_FILE = "lora_adapter.safetensors"
# Weights that get an adapter, by their name inside a transformer layer.
TARGETS = (
    "self_attn.in_proj_weight",
    "self_attn.out_proj.weight",
    "cross_attention.in_proj_weight",
    "cross_attention.out_proj.weight",
    "linear1.weight",
    "linear2.weight",
)
_DIM = "transformer_lm.dim="
_PARAMETRIZED = re.compile(r"^(?P<owner>.*)\.parametrizations\.(?P<name>[^.]+)\.original$")
_ADAPTER = re.compile(r"^(?P<owner>.*)\.parametrizations\.(?P<name>[^.]+)\.0\.lora_(?P<ab>[ab])$")


class LowRankUpdate(nn.Module):
    """W -> W + B·A for one weight matrix (out × in)."""

    def __init__(self, out_features: int, in_features: int, rank: int) -> None:
        super().__init__()
        self.lora_a = nn.Parameter(torch.empty(rank, in_features))
        self.lora_b = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.lora_b @ self.lora_a).to(weight.dtype)


def max_rank(dim: int) -> int:
    """The largest useful rank for an LM of width `dim`: half its width."""
    return max(1, dim // 2)


def check_rank(rank: int, architecture: tp.Sequence[str], model_version: str) -> None:
    """Refuse a rank the base LM (its `transformer_lm.dim=` override) cannot take."""
    from musicgen_ft.errors import InputError

    if rank <= 0:
        return
    dims = [int(o.split("=", 1)[1]) for o in architecture if o.lstrip("+").startswith(_DIM)]
    if dims and rank > max_rank(dims[0]):
        raise InputError(
            "lora_rank",
            f"{rank} is too large for {model_version}, whose LM is {dims[0]} wide: use at most "
            f"{max_rank(dims[0])} (8..64 is usual), or 0 for a full fine-tune",
        )


def _targets(lm: nn.Module) -> list[tuple[nn.Module, str]]:
    found = []
    for layer in lm.transformer.layers:  # type: ignore[union-attr]
        for target in TARGETS:
            *path, leaf = target.split(".")
            owner: tp.Any = layer
            for part in path:
                owner = getattr(owner, part, None)
            if owner is not None and isinstance(getattr(owner, leaf, None), nn.Parameter):
                found.append((owner, leaf))
    return found


def apply_lora(lm: nn.Module, rank: int) -> int:
    """Freeze the LM and add rank-`rank` adapters to its targets; returns the adapter count."""
    for param in lm.parameters():
        param.requires_grad_(False)
    targets = _targets(lm)
    for owner, leaf in targets:
        weight = getattr(owner, leaf)
        update = LowRankUpdate(weight.shape[0], weight.shape[1], rank).to(weight.device)
        parametrize.register_parametrization(owner, leaf, update, unsafe=True)
    return len(targets)


def trainable(lm: nn.Module) -> list[nn.Parameter]:
    return [p for p in lm.parameters() if p.requires_grad]


def to_lora_state(plain: tp.Mapping[str, torch.Tensor], lm: nn.Module) -> dict[str, torch.Tensor]:
    """A plain (released-format) LM state under the adapted LM's names; adapters as initialised."""
    out = {}
    for name, value in lm.state_dict().items():
        match = _PARAMETRIZED.match(name)
        plain_name = f"{match['owner']}.{match['name']}" if match else name
        if plain_name in plain:
            out[name] = plain[plain_name]
        elif _ADAPTER.match(name):
            out[name] = value
        else:
            raise KeyError(f"the base LM has no weight {plain_name}")
    return out


def is_lora_state(state: tp.Mapping[str, torch.Tensor]) -> bool:
    return any(_ADAPTER.match(name) for name in state)


def merge(state: tp.Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adapted LM's state with W + B·A under the plain names (what stock AudioCraft loads)."""
    adapters: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for name, value in state.items():
        match = _ADAPTER.match(name)
        if match:
            adapters.setdefault((match["owner"], match["name"]), {})[match["ab"]] = value
    out = {}
    for name, value in state.items():
        if _ADAPTER.match(name):
            continue
        match = _PARAMETRIZED.match(name)
        if not match:
            out[name] = value
            continue
        pair = adapters[(match["owner"], match["name"])]
        delta = pair["b"].float() @ pair["a"].float()
        out[f"{match['owner']}.{match['name']}"] = (value.float() + delta).to(value.dtype)
    return out


def adapter_tensors(state: tp.Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A and B of every adapter, named `<owner>.<weight>.lora_a` / `.lora_b`."""
    out = {}
    for name, value in state.items():
        match = _ADAPTER.match(name)
        if match:
            key = f"{match['owner']}.{match['name']}.lora_{match['ab']}"
            out[key] = value.detach().to("cpu").contiguous()
    return out


def rank_of(state: tp.Mapping[str, torch.Tensor]) -> int:
    for name, value in state.items():
        if name.endswith(".lora_a"):
            return int(value.shape[0])
    return 0
