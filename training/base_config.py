"""The base checkpoint is the truth about the model: its LM architecture as Hydra overrides.

A released `state_dict.bin` (and every fine-tune's) carries the config it was trained with
(`xp.cfg`). Training takes the LM's shape and conditioning from there (dimensions, heads,
layers, codebooks, card, codebook pattern, conditioners, fuser, stereo interleaving) rather
than from a table of ours, so a base whose config differs from AudioCraft's defaults (a
stand-in, a community checkpoint, a drifted release) still loads into the model it was saved
from. Only what a fine-tune changes (dropout, memory settings, initialisation) is left to the
fine-tune's own config. A base that cannot be fine-tuned is refused before any heavy work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from musicgen_ft.errors import WeightsMissingError
from musicgen_ft.variants import LM_FILE, Variant

# Sections of the base config that define the model the weights belong to.
ARCHITECTURE = (
    "transformer_lm",
    "codebooks_pattern",
    "conditioners",
    "fuser",
    "interleave_stereo_codebooks",
)
# Settings of `transformer_lm` that are the fine-tune's own (they change no weight's shape).
TRAINING_ONLY = frozenset(
    {
        "dropout",
        "emb_lr",
        "memory_efficient",
        "attention_as_float32",
        "checkpointing",
        "weight_init",
        "depthwise_init",
        "zero_bias_init",
        "attention_dropout",
    }
)


def read_base_config(base_dir: Path) -> Any:
    """The `xp.cfg` saved in the base LM checkpoint (memory-mapped: the weights are not read)."""
    import torch
    from omegaconf import OmegaConf

    path = base_dir / LM_FILE
    try:
        pkg = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception as exc:
        raise WeightsMissingError(
            f"{path} cannot be read as a MusicGen checkpoint: {exc}"
        ) from None
    raw = pkg.get("xp.cfg") if isinstance(pkg, dict) else None
    if raw is None:
        raise WeightsMissingError(
            f"{path} has no xp.cfg: it is not a released-format MusicGen checkpoint "
            "(state_dict.bin with best_state and xp.cfg)"
        )
    return OmegaConf.create(raw)


def architecture_overrides(base_dir: Path, variant: Variant) -> list[str]:
    """Hydra overrides that rebuild the base's LM; refuse a base that cannot be fine-tuned."""
    from omegaconf import OmegaConf

    cfg = read_base_config(base_dir)
    where = base_dir / LM_FILE
    if OmegaConf.select(cfg, "lm_model") not in (None, "transformer_lm"):
        raise WeightsMissingError(
            f"{where}: lm_model={cfg.lm_model} cannot be fine-tuned (transformer_lm only)"
        )
    lm = OmegaConf.select(cfg, "transformer_lm")
    if lm is None or OmegaConf.select(cfg, "transformer_lm.dim") is None:
        raise WeightsMissingError(f"{where}: its xp.cfg describes no transformer_lm")
    n_q = int(lm.n_q)
    if n_q != variant.n_q:
        raise WeightsMissingError(
            f"{where}: the LM predicts {n_q} codebooks but {variant.name} trains with "
            f"{variant.n_q}; is it a {variant.name} checkpoint?"
        )
    out: list[str] = []
    for section in ARCHITECTURE:
        node = OmegaConf.select(cfg, section)
        if node is None:
            continue
        try:
            values = OmegaConf.to_container(node, resolve=True)
        except Exception:  # an interpolation of the base's own environment
            values = OmegaConf.to_container(node, resolve=False)
        if section == "transformer_lm" and isinstance(values, dict):
            values = {k: v for k, v in values.items() if k not in TRAINING_ONLY}
        out += _flatten(section, values)
    return out


def _flatten(key: str, value: Any) -> list[str]:
    if isinstance(value, dict):
        if not value:
            return [f"++{key}={{}}"]
        return [line for k, v in value.items() for line in _flatten(f"{key}.{k}", v)]
    return [f"++{key}={_render(value)}"]


def _render(value: Any) -> str:
    """A value in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_render(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"
