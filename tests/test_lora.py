"""LoRA: only the adapters train, and the tar's merged weights load in stock AudioCraft.

The solver run trains the tiny `debug` LM with `lora_rank=4` through AudioCraft's MusicGen
solver and Dora, exports it with the project's exporter and loads the result with
`MusicGen.get_pretrained`, the way a user of stock AudioCraft would.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import torch
from solver_support import train, write_dataset

from training import lora
from training.export import write_tar


def _debug_lm(model_dir: Path) -> Any:
    from audiocraft.models import MusicGen

    return MusicGen.get_pretrained(str(model_dir), device="cpu").lm


def _logits(lm: Any) -> torch.Tensor:
    from audiocraft.modules.conditioners import ConditioningAttributes

    codes = torch.randint(0, 64, (2, 4, 12), generator=torch.Generator().manual_seed(3))
    attributes = [ConditioningAttributes(text={"description": d}) for d in ("a", "b c")]
    conditions = lm.condition_provider(lm.condition_provider.tokenize(attributes))
    with torch.no_grad():
        out = lm.compute_predictions(codes, [], conditions)
    # Positions the delay pattern leaves invalid are NaN; compare the valid ones.
    return out.logits[out.mask]


def test_adapters_start_as_the_base_and_merge_into_plain_weights(debug_model_dir: Path) -> None:
    lm = _debug_lm(debug_model_dir).eval()
    base_logits = _logits(lm)
    plain = {k: v.clone() for k, v in lm.state_dict().items()}
    count = lora.apply_lora(lm, rank=4)
    assert count == 2 * len(lora.TARGETS)  # two layers, every target present
    assert all("lora_" in n for n, p in lm.named_parameters() if p.requires_grad)
    torch.testing.assert_close(_logits(lm), base_logits)  # B = 0: the base model exactly
    lm.load_state_dict(lora.to_lora_state(plain, lm))
    torch.testing.assert_close(_logits(lm), base_logits)

    with torch.no_grad():
        for name, param in lm.named_parameters():
            if name.endswith("lora_b"):
                param.normal_(std=0.05)
    adapted = _logits(lm)
    assert (adapted - base_logits).abs().max() > 1e-3
    merged = lora.merge(lm.state_dict())
    assert merged.keys() == plain.keys()
    stock = _debug_lm(debug_model_dir).eval()
    stock.load_state_dict(merged)
    torch.testing.assert_close(_logits(stock), adapted, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_a_lora_fine_tune_trains_only_adapters_and_loads_in_stock_musicgen(
    debug_model_dir: Path, tmp_path: Path
) -> None:
    from audiocraft.models import loaders

    egs = write_dataset(tmp_path / "data")
    # With activation checkpointing, as the batch plan pairs them on small cards.
    run = train(egs, debug_model_dir, tmp_path / "run", epochs=1, checkpointing=True, lora_rank=4)
    assert "LoRA rank 4: 12 adapted weight matrices" in run.log
    checkpoint = torch.load(run.xp / "checkpoint.th", map_location="cpu", weights_only=False)
    assert checkpoint["xp.cfg"].transformer_lm.checkpointing == "torch"
    base = torch.load(debug_model_dir / "state_dict.bin", map_location="cpu", weights_only=False)
    base_state = base["best_state"]
    adapters = {k: v for k, v in run.weights.items() if ".lora_" in k}
    assert len(adapters) == 24
    assert all(float(v.abs().max()) > 0 for k, v in adapters.items() if k.endswith("lora_b"))
    for name, value in run.weights.items():
        if ".lora_" in name:
            continue
        plain = name.replace(".parametrizations.", ".").replace(".original", "")
        # Every base weight, frozen ones and the adapted matrices' own W, is untouched.
        assert torch.equal(value, base_state[plain]), name

    tar_path = write_tar(tmp_path / "trained_model.tar", run.xp, {"format": 1})
    folder = tmp_path / "stock"
    folder.mkdir()
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
        assert lora.ADAPTER_FILE in names
        tar.extract("state_dict.bin", folder)
        member = tar.extractfile(lora.ADAPTER_FILE)
        assert member is not None
        adapter_bytes = member.read()
    shutil.copy(debug_model_dir / "compression_state_dict.bin", folder)
    # AudioCraft's own loader of `MusicGen.get_pretrained` (which would also refuse the 5 s
    # segments of this run as a generation length).
    stock = loaders.load_lm_model(str(folder), device="cpu").eval()

    adapted = _debug_lm(debug_model_dir).eval()
    lora.apply_lora(adapted, rank=4)
    adapted.load_state_dict(run.weights)
    trained = _logits(adapted)
    torch.testing.assert_close(_logits(stock), trained, rtol=1e-5, atol=1e-5)
    assert (trained - _logits(_debug_lm(debug_model_dir).eval())).abs().max() > 1e-4

    from safetensors import safe_open
    from safetensors.torch import load

    tensors = load(adapter_bytes)
    assert len(tensors) == 24 and lora.rank_of(tensors) == 4
    buffer = io.BytesIO(adapter_bytes)
    path = tmp_path / lora.ADAPTER_FILE
    path.write_bytes(buffer.getvalue())
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata()["rank"] == "4"


def test_a_rank_the_model_cannot_take_is_refused_before_any_work(
    example_archive: Path, tmp_path: Path
) -> None:
    from spine_support import quick_inputs

    from musicgen_ft.errors import InputError
    from musicgen_ft.pipeline import run_job
    from training.launch import Topology

    with pytest.raises(InputError, match=r"lora_rank: 64 is too large for debug, whose LM is 64"):
        run_job(quick_inputs(example_archive, lora_rank=64), tmp_path / "out", Topology("cpu", 1))
    assert not (tmp_path / "out" / "work").exists()


@pytest.mark.slow
def test_the_jobs_tar_loads_in_stock_musicgen_get_pretrained(
    example_archive: Path, debug_model_dir: Path, tmp_path: Path
) -> None:
    """The user's path: a LoRA job through the pipeline, its tar extracted beside the base's
    compression model, loaded with `MusicGen.get_pretrained` as stock AudioCraft users do."""
    from audiocraft.models import MusicGen
    from spine_support import quick_inputs

    from musicgen_ft.pipeline import run_job
    from training.launch import Topology

    out = tmp_path / "job"
    result = run_job(
        quick_inputs(example_archive, lora_rank=4), out, Topology("cpu", 1), keep_work=True
    )
    assert result.tar_path is not None
    assert "+musicgen_ft_lora_rank=4" in result.metadata["training"]["overrides"]
    [checkpoint] = list((out / "work").rglob("checkpoint.th"))
    best = torch.load(checkpoint, map_location="cpu", weights_only=False)["best_state"]["model"]
    assert lora.is_lora_state(best)
    folder = tmp_path / "stock"
    folder.mkdir()
    with tarfile.open(result.tar_path) as tar:
        assert lora.ADAPTER_FILE in tar.getnames()
        tar.extract("state_dict.bin", folder)
    shutil.copy(debug_model_dir / "compression_state_dict.bin", folder)
    stock = MusicGen.get_pretrained(str(folder), device="cpu")
    merged = lora.merge(best)
    loaded = stock.lm.state_dict()
    assert loaded.keys() == merged.keys()
    for name, value in merged.items():
        torch.testing.assert_close(loaded[name], value, msg=name)
    stock.set_generation_params(duration=1.0, top_k=64)  # the debug codebooks hold 64
    assert stock.generate(["a test"], progress=False).shape[-1] > 0
