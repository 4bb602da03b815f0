"""Tiny stand-ins of the released weights, in the released formats and repository layouts.

- `t5-base`: a 1-layer T5 encoder with d_model 768 (what AudioCraft expects of t5-base), a
  SentencePiece vocabulary trained here, saved with `save_pretrained` (config.json, spiece.model,
  tokenizer.json, model.safetensors) as in the real repository.
- `facebook/musicgen-*`: `state_dict.bin` (a 1-layer LM whose `xp.cfg` uses the released
  conditioners: T5 named `t5-base`, chroma for melody) and `compression_state_dict.bin` (a tiny
  EnCodec with the variant's codebooks), both built with AudioCraft's own builders.
- `laion/clap-htsat-unfused`: a 2-stage HTSAT audio tower and a 1-layer RoBERTa text tower
  (`transformers`' `ClapModel`, the released feature extractor settings: 48 kHz, 64 mel bands,
  10 s, `rand_trunc` / `repeatpad`), a byte-level BPE vocabulary trained here, in the released
  layout: config.json, preprocessor_config.json, pytorch_model.bin, vocab.json, merges.txt,
  tokenizer.json, tokenizer_config.json, special_tokens_map.json.

The MusicGen builds load T5 (and, for melody, Demucs) the way AudioCraft does, so run
`python tests/hub_standins.py musicgen OUT VARIANT` with `HF_HUB_CACHE` / `TORCH_HOME` pointing
at caches that hold the stand-ins.

`size="real"` (`python tests/hub_standins.py t5|musicgen OUT [VARIANT] real`) builds the same
files at the released sizes instead, random init: t5-base's encoder shape (12 layers, d_model
768, d_ff 3072, 12 heads, vocabulary 32128; the tokenizer stays the small one trained here), the
variant's full LM (no shape overrides) and the released 32 kHz EnCodec shape. The benchmarks
(bench/standin_weights.py) use them; the tests use the tiny default.
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


SIZES = ("tiny", "real")
# t5-base's published shape (https://huggingface.co/t5-base/blob/main/config.json): d_model
# 768, d_kv 64, d_ff 3072, 12 layers, 12 heads, a vocabulary of 32128.
T5_BASE_VOCAB = 32128


def _check_size(size: str) -> None:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")


def tiny_t5(out: Path, size: str = "tiny") -> Path:
    _check_size(size)
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
    if size == "real":
        config = T5Config(
            vocab_size=T5_BASE_VOCAB, d_model=768, d_kv=64, d_ff=3072, num_layers=12,
            num_heads=12, decoder_start_token_id=0,
        )  # fmt: skip
    else:
        config = T5Config(
            vocab_size=len(tokenizer), d_model=768, d_kv=16, d_ff=32, num_layers=1, num_heads=2,
            decoder_start_token_id=0,
        )  # fmt: skip
    T5EncoderModel(config).save_pretrained(str(out), safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)
    return out


def musicgen(out: Path, variant_name: str, size: str = "tiny") -> Path:
    """A released-format `facebook/musicgen-<variant>` stand-in in `out` (`size`: see above)."""
    _check_size(size)
    sys.path.insert(0, str(ROOT))
    import torch
    from audiocraft.models import builders

    from musicgen_ft.variants import COMPRESSION_FILE, LM_FILE, get_variant
    from training.debug_model import COMPRESSION_OVERRIDES
    from training.hydra_config import compose_config

    variant = get_variant(variant_name)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if size == "real":
        comp_overrides = [
            "solver=compression/encodec_musicgen_32khz",
            "device=cpu",
            "rvq.kmeans_init=false",
        ]
        lm_shape: list[str] = []
    else:
        comp_overrides = list(COMPRESSION_OVERRIDES)
        lm_shape = [
            "transformer_lm.dim=32",
            "transformer_lm.num_heads=2",
            "transformer_lm.num_layers=1",
        ]
    comp_cfg = compose_config([*comp_overrides, f"rvq.bins={variant.card}"])
    compression = builders.get_compression_model(comp_cfg)
    lm_cfg = compose_config(
        [
            f"solver={variant.solver}",
            "device=cpu",
            "dtype=float32",
            "dset=audio/musicgen_ft",
            f"channels={variant.channels}",
            *variant.lm_overrides,
            *lm_shape,
        ]
    )
    lm = builders.get_lm_model(lm_cfg)
    save_released(compression, comp_cfg, out / COMPRESSION_FILE)
    save_released(lm, lm_cfg, out / LM_FILE)
    return out


# The released htdemucs (signature 955717e8): Demucs's HTDemucs with its published training
# config's non-default arguments; everything else is the class's default.
HTDEMUCS_REAL: dict[str, Any] = {"bottom_channels": 512, "dconv_mode": 3, "segment": "39/5"}


def htdemucs(repo: Path, sig: str = "955717e8", size: str = "real", seed: int = 0) -> Path:
    """A random HTDemucs in Demucs's own format: `<sig>-<first 8 hex of its SHA-256>.th` plus a
    `htdemucs.yaml` bag, loadable with `demucs.pretrained.get_model("htdemucs", repo=repo)`.
    `size="real"`: the released architecture (~42 M parameters, saved in half precision as
    Demucs publishes it); `tiny`: channels 8, depth 4, one transformer layer."""
    _check_size(size)
    import hashlib
    from fractions import Fraction

    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import serialize_model
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    common: dict[str, Any] = {
        "sources": ["drums", "bass", "other", "vocals"],
        "audio_channels": 2,
        "samplerate": 44100,
    }
    if size == "real":
        shape = {**HTDEMUCS_REAL, "segment": Fraction(HTDEMUCS_REAL["segment"])}
    else:
        shape = {"channels": 8, "depth": 4, "t_layers": 1, "nfft": 1024, "segment": Fraction(2)}
    model = HTDemucs(**common, **shape)
    repo.mkdir(parents=True, exist_ok=True)
    tmp = repo / f"{sig}.tmp"
    torch.save(serialize_model(model, OmegaConf.create({}), half=size == "real"), tmp)
    checksum = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    path = repo / f"{sig}-{checksum}.th"
    tmp.rename(path)
    (repo / "htdemucs.yaml").write_text(f"models: ['{sig}']\n")
    return path


CLAP_SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                 "sep_token": "</s>", "pad_token": "<pad>", "cls_token": "<s>",
                 "mask_token": "<mask>"}  # fmt: skip


CLAP_TEXTS = ("a pure tone", "white noise hiss")  # the two kinds the stand-in tells apart


def tiny_clap(out: Path, seed: int = 0, steps: int = 40) -> Path:
    """`laion/clap-htsat-unfused` in its released file layout (see the module docstring),
    trained here for `steps` contrastive steps (`ClapModel`'s own loss) on two kinds of audio,
    sine tones and white noise, paired with `CLAP_TEXTS`, so that its embeddings depend on the
    input: a random tower maps every clip and every text to nearly one point."""
    import json

    import numpy as np
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, RobertaTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    words = [*WORDS, *" ".join(CLAP_TEXTS).split()]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        [" ".join(rng.choice(words) for _ in range(8)) for _ in range(300)],
        vocab_size=400, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )  # fmt: skip
    bpe.save_model(str(out))  # vocab.json, merges.txt
    backend = bpe._tokenizer
    backend.post_processor = RobertaProcessing(
        ("</s>", backend.token_to_id("</s>")), ("<s>", backend.token_to_id("<s>"))
    )
    tokenizer = RobertaTokenizerFast(tokenizer_object=backend, **CLAP_SPECIALS)
    tokenizer.save_pretrained(str(out))
    (out / "special_tokens_map.json").write_text(json.dumps(CLAP_SPECIALS, indent=2))
    extractor = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")
    (out / "preprocessor_config.json").write_text(extractor.to_json_string())
    torch.manual_seed(seed)
    config = ClapConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 37, "max_position_embeddings": 80,
            "projection_dim": 16,
        },
        audio_config={
            "depths": [1, 1], "num_attention_heads": [1, 2], "patch_embeds_hidden_size": 16,
            "hidden_size": 32, "projection_dim": 16, "projection_hidden_size": 32,
        },
        projection_dim=16,
    )  # fmt: skip
    model = ClapModel(config)
    sr, noise = extractor.sampling_rate, np.random.default_rng(seed)
    t = np.arange(sr * 4) / sr
    text = tokenizer(list(CLAP_TEXTS), return_tensors="pt", padding=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        tone = 0.3 * np.sin(2 * np.pi * noise.uniform(80, 1000) * t)
        hiss = noise.uniform(0.05, 0.3) * noise.standard_normal(len(t))
        audio = extractor([tone.astype(np.float32), hiss.astype(np.float32)], sampling_rate=sr,
                          return_tensors="pt")  # fmt: skip
        loss = model(**text, **audio, return_loss=True).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    config.save_pretrained(str(out))
    torch.save(model.state_dict(), out / "pytorch_model.bin")  # the released weights file
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
        tiny_t5(target, *sys.argv[3:4])
    elif kind == "clap":
        tiny_clap(target)
    elif kind == "htdemucs":
        print(htdemucs(target, size=sys.argv[3] if len(sys.argv) > 3 else "real"))
    else:
        musicgen(target, sys.argv[3], *sys.argv[4:5])
