"""Gradient accumulation is the full batch's step: same losses, same weights, 1 or 2 processes.

The in-process tests check the loss shares and condition gradients on the real debug LM; the
solver runs (AudioCraft's MusicGen solver through Dora, tiny `debug` model, CPU) compare
`train_steps.jsonl` and the final weights of runs with and without accumulation. The data has
chunks of different lengths, so samples carry different numbers of valid (unpadded) tokens:
weighting each micro-batch by its own token count instead of the batch's would not match.
"""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from solver_support import BATCH, EPOCHS, UPDATES, train, write_dataset

from musicgen_ft.inputs import TrainInputs
from musicgen_ft.variants import get_variant
from training.accumulation import (
    backward_conditions,
    condition_slice,
    shared_cross_entropy,
    valid_counts,
)
from training.batching import micro_sizes
from training.launch import Topology
from training.overrides import TrainPlan, build_overrides


def _debug_lm() -> Any:
    from audiocraft.models import builders

    from training.hydra_config import compose_config

    cfg = compose_config(
        build_overrides(
            TrainPlan(
                inputs=TrainInputs(dataset_path="d", model_version="debug"),
                variant=get_variant("debug"),
                base_model_dir=Path("/none"),
                egs_dir=Path("/none"),
                batch_size=BATCH,
                world_size=1,
                device="cpu",
                valid_examples=1,
            )
        )
    )
    torch.manual_seed(0)
    return builders.get_lm_model(cfg)


def _lm_batch(lm: Any, size: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Random codes, ragged padding (valid lengths 3..T), and varied text conditions."""
    from audiocraft.modules.conditioners import ConditioningAttributes

    g = torch.Generator().manual_seed(1)
    steps = 40
    codes = torch.randint(0, 64, (size, 4, steps), generator=g)
    padding = torch.ones_like(codes, dtype=torch.bool)
    for i, valid in enumerate(torch.randint(3, steps + 1, (size,), generator=g).tolist()):
        codes[i, :, valid:] = lm.special_token_id
        padding[i, :, valid:] = False
    attributes = [
        ConditioningAttributes(text={"description": f"text {i % 3}"}) for i in range(size)
    ]
    tokenized = lm.condition_provider.tokenize(attributes)
    return codes, padding, tokenized


def _grads(lm: Any) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in lm.named_parameters() if p.grad is not None}


def _both_ways(lm: Any, size: int, autocast: Any) -> dict[str, Any]:
    """The full batch's loss and gradients, and the accumulated ones over micro-batches of 2."""
    from audiocraft.solvers.musicgen import MusicGenSolver

    codes, padding, tokenized = _lm_batch(lm, size)
    device = next(lm.parameters()).device
    codes, padding = codes.to(device), padding.to(device)
    lm.zero_grad()
    with autocast:
        out = lm.compute_predictions(codes, [], lm.condition_provider(tokenized))
        full, full_q = MusicGenSolver._compute_cross_entropy(
            None, out.logits, codes, padding & out.mask
        )
    full.backward()
    expected = _grads(lm)

    lm.zero_grad()
    with autocast:
        conditions = lm.condition_provider(tokenized)
    bounds = list(itertools.pairwise(itertools.accumulate(micro_sizes(size, 2), initial=0)))
    counts = valid_counts([padding[a:b] for a, b in bounds], out.mask[0])
    total, naive, parts = torch.zeros([], device=device), torch.zeros([], device=device), []
    total_q = [torch.zeros([], device=device) for _ in full_q]
    for a, b in bounds:
        part = condition_slice(conditions, a, b)
        with autocast:
            micro = lm.compute_predictions(codes[a:b], [], part)
            mask = padding[a:b] & micro.mask
            ce, ce_q = shared_cross_entropy(micro.logits, codes[a:b], mask, counts)
            own, _ = MusicGenSolver._compute_cross_entropy(None, micro.logits, codes[a:b], mask)
        ce.backward()
        parts.append(part)
        total += ce.detach()
        total_q = [x + y for x, y in zip(total_q, ce_q, strict=True)]
        naive += own.detach() / len(bounds)
    backward_conditions(conditions, parts)
    return {
        "full": full.detach(),
        "full_q": torch.stack(full_q),
        "expected": expected,
        "total": total,
        "total_q": torch.stack(total_q),
        "got": _grads(lm),
        "naive": naive,
    }


def test_micro_batch_shares_give_the_full_batch_loss_and_gradients() -> None:
    import contextlib

    assert micro_sizes(7, 2) == [2, 2, 2, 1]
    r = _both_ways(_debug_lm(), 7, contextlib.nullcontext())
    torch.testing.assert_close(r["total"], r["full"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(r["total_q"], r["full_q"], rtol=1e-6, atol=1e-6)
    assert r["got"].keys() == r["expected"].keys()
    assert any("condition_provider" in name for name in r["got"])  # the conditioner learns too
    for name, grad in r["expected"].items():
        torch.testing.assert_close(r["got"][name], grad, rtol=1e-5, atol=1e-7, msg=name)
    # The control: the mean of the micro-batches' own means is another loss on ragged data.
    assert abs(float(r["naive"]) - float(r["full"])) > 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_micro_batch_shares_under_16_bit_autocast_on_gpu() -> None:
    """The precision rule's autocast (bf16, or fp16), on the GPU: the same step to 16-bit noise."""
    from training.precision import choose_precision, device_caps

    dtype = choose_precision(device_caps("cuda"), "adamw", env={}).autocast
    assert dtype in ("bfloat16", "float16")
    lm = _debug_lm().cuda()
    r = _both_ways(lm, 7, torch.autocast("cuda", dtype=getattr(torch, dtype)))
    torch.testing.assert_close(r["total"], r["full"], rtol=1e-2, atol=1e-2)
    flat = [torch.cat([g.float().flatten() for g in r[k].values()]) for k in ("got", "expected")]
    assert float(torch.nn.functional.cosine_similarity(*flat, dim=0)) > 0.999
    assert float(flat[0].norm() / flat[1].norm()) == pytest.approx(1.0, rel=1e-2)


@pytest.fixture(scope="module")
def egs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("accumulation-data"))


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_accumulated_run_matches_the_full_batch_run(
    processes: int, egs_dir: Path, debug_model_dir: Path, tmp_path: Path
) -> None:
    """Batch 8, micro-batch 2: accumulation 4 on one process, 2 on each of two."""
    p_run = train(egs_dir, debug_model_dir, tmp_path / "plain", processes)
    a_run = train(egs_dir, debug_model_dir, tmp_path / "accum", processes, micro=2)
    plain, plain_weights, plain_log = p_run.steps, p_run.weights, p_run.log
    accum, accum_weights, accum_log = a_run.steps, a_run.weights, a_run.log
    per_process = BATCH // processes
    assert "gradient accumulation" not in plain_log
    assert f"{per_process} samples per process in {per_process // 2} micro-batches" in accum_log
    assert [s["micro_batches"] for s in plain] == [1] * UPDATES * EPOCHS
    assert [s["micro_batches"] for s in accum] == [per_process // 2] * UPDATES * EPOCHS
    # The LR schedule counts optimizer steps: warmup 2, then cosine over the 6 updates.
    assert [(s["epoch"], s["step"]) for s in accum] == [(e, i) for e in (1, 2) for i in (1, 2, 3)]
    assert [s["lr"] for s in accum] == pytest.approx([s["lr"] for s in plain], rel=1e-12)
    assert accum[0]["lr"] == 0.0 and accum[2]["lr"] == pytest.approx(1e-3)
    for a, p in zip(accum, plain, strict=True):
        assert math.isfinite(a["ce"])
        assert a["ce"] == pytest.approx(p["ce"], rel=1e-5, abs=1e-6), (a, p)
        # The synchronised gradient itself, before clipping (Adam hides a wrong scale).
        assert a["grad_norm"] == pytest.approx(p["grad_norm"], rel=1e-4), (a, p)
    assert plain[0]["ce"] != pytest.approx(plain[-1]["ce"], abs=1e-3)  # it did train
    assert accum_weights.keys() == plain_weights.keys()
    moved = 0.0
    for name, weight in plain_weights.items():
        torch.testing.assert_close(accum_weights[name], weight, rtol=1e-5, atol=1e-6, msg=name)
    base = torch.load(debug_model_dir / "state_dict.bin", map_location="cpu", weights_only=False)
    for name, weight in base["best_state"].items():
        if name in plain_weights:
            moved = max(moved, float((plain_weights[name] - weight).abs().max()))
    assert moved > 1e-3  # the weights compared are trained ones, not the base's


class _Launched(Exception):
    """Raised by the stand-in launcher: the job got as far as starting the solver."""


def test_the_job_plans_its_batch_before_any_work(
    example_archive: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The pipeline refuses a bad plan in its check stage, and hands the plan to the solver."""
    from spine_support import quick_inputs

    from musicgen_ft.errors import InputError
    from musicgen_ft.pipeline import run_job
    from training import launch

    caplog.set_level(logging.INFO, logger="musicgen_ft")
    cpu = Topology(device="cpu", world_size=1)
    monkeypatch.setenv("MUSICGEN_FT_MAX_MICRO_BATCH", "0")
    with pytest.raises(InputError, match="MUSICGEN_FT_MAX_MICRO_BATCH='0' must be an integer"):
        run_job(quick_inputs(example_archive), tmp_path / "bad", cpu)
    assert not (tmp_path / "bad" / "work").exists()  # refused before fetching anything

    launched: list[list[str]] = []

    def fake_training(overrides: list[str], *args: object, **kwargs: object) -> Path:
        launched.append(overrides)
        raise _Launched

    monkeypatch.setenv("MUSICGEN_FT_MAX_MICRO_BATCH", "1")
    monkeypatch.setattr(launch, "run_training", fake_training)
    with pytest.raises(_Launched):
        run_job(quick_inputs(example_archive, batch_size=3), tmp_path / "ok", cpu)
    [overrides] = launched
    assert "dataset.batch_size=3" in overrides and "+musicgen_ft_micro_batch=1" in overrides
    assert "batch plan: global batch 3 = 1 process(es) x 3 per process, in 3 micro-batch" in (
        caplog.text
    )
