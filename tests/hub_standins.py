"""Tiny stand-ins of the released weights, in the released formats and repository layouts.

- `t5-base`: a 1-layer T5 encoder with d_model 768 (what AudioCraft expects of t5-base), a
  SentencePiece vocabulary trained here, saved with `save_pretrained` (config.json, spiece.model,
  tokenizer.json, model.safetensors) as in the real repository.
- `facebook/musicgen-*`: `state_dict.bin` (a 1-layer LM whose `xp.cfg` uses the released
  conditioners: T5 named `t5-base`, chroma for melody) and `compression_state_dict.bin` (a tiny
  EnCodec with the variant's codebooks), both built with AudioCraft's own builders.

The MusicGen builds load T5 (and, for melody, Demucs) the way AudioCraft does, so run
`python tests/hub_standins.py musicgen OUT VARIANT` with `HF_HUB_CACHE` / `TORCH_HOME` pointing
at caches that hold the stand-ins.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORDS = [
    "music",
    "piano",
    "synth",
    "drums",
    "bass",
    "calm",
    "bright",
    "dark",
    "warm",
    "ambient",
    "pad",
    "chords",
    "tone",
    "major",
    "minor",
    "bpm",
    "lofi",
    "rock",
    "pop",
    "jazz",
    "electronic",
    "slow",
    "fast",
    "guitar",
    "strings",
    "epic",
    "dreamy",
    "test",
    "melody",
]


def tiny_t5(out: Path) -> Path:
    import sentencepiece as spm
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    corpus = out.parent / "t5-corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(500)))
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(out / "spiece"), vocab_size=48,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        character_coverage=1.0, minloglevel=2,
    )  # fmt: skip
    (out / "spiece.vocab").unlink()
    corpus.unlink()
    tokenizer = T5Tokenizer.from_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    (out / "tokenizer_config.json").unlink(missing_ok=True)
    (out / "special_tokens_map.json").unlink(missing_ok=True)
    import torch

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=768, d_kv=16, d_ff=32, num_layers=1, num_heads=2,
        decoder_start_token_id=0,
    )  # fmt: skip
    T5EncoderModel(config).save_pretrained(str(out), safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)
    return out


def musicgen(out: Path, variant_name: str) -> Path:
    """A released-format `facebook/musicgen-<variant>` stand-in in `out`."""
    sys.path.insert(0, str(ROOT))
    import torch
    from audiocraft.models import builders

    from musicgen_ft.variants import COMPRESSION_FILE, LM_FILE, get_variant
    from training.debug_model import COMPRESSION_OVERRIDES
    from training.hydra_config import compose_config

    variant = get_variant(variant_name)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    comp_cfg = compose_config([*COMPRESSION_OVERRIDES, f"rvq.bins={variant.card}"])
    compression = builders.get_compression_model(comp_cfg)
    lm_cfg = compose_config(
        [
            f"solver={variant.solver}",
            "device=cpu",
            "dtype=float32",
            "dset=audio/musicgen_ft",
            f"channels={variant.channels}",
            *variant.lm_overrides,
            "transformer_lm.dim=32",
            "transformer_lm.num_heads=2",
            "transformer_lm.num_layers=1",
        ]
    )
    lm = builders.get_lm_model(lm_cfg)
    save_released(compression, comp_cfg, out / COMPRESSION_FILE)
    save_released(lm, lm_cfg, out / LM_FILE)
    return out


def save_released(module: Any, cfg: Any, path: Path) -> None:
    """Save a model as Meta publishes MusicGen checkpoints: best_state, xp.cfg, version."""
    import torch
    from audiocraft import __version__ as ac_version
    from omegaconf import OmegaConf

    pkg = {
        "best_state": module.state_dict(),
        "xp.cfg": OmegaConf.to_yaml(cfg, resolve=False),
        "version": ac_version,
        "exported": True,
    }
    torch.save(pkg, path)


if __name__ == "__main__":
    kind, target = sys.argv[1], Path(sys.argv[2])
    if kind == "t5":
        tiny_t5(target)
    else:
        musicgen(target, sys.argv[3])
