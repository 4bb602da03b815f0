"""The batch plan (global = micro × processes × accumulation), its memory model and precision."""

from __future__ import annotations

import pytest

from musicgen_ft.errors import InputError
from musicgen_ft.variants import VARIANTS, get_variant
from training import memory
from training.batching import BatchPlan, micro_sizes, resolve_batch_plan
from training.precision import DeviceCaps, choose_precision

GB80 = 80 * 10**9  # an H100/A100 "80 GB" card (79.2 GiB reported, about 74.5 GiB)
GB24 = 24 * 10**9


def plan(requested: int, processes: int, name: str = "small", **kw: object) -> BatchPlan:
    values: dict[str, object] = {"device": "cuda", "optimizer": "dadam", "env": {}}
    values.update(kw)
    return resolve_batch_plan(requested, processes, get_variant(name), **values)  # type: ignore[arg-type]


def test_divisible_batch_is_kept() -> None:
    got = plan(16, 8, device_bytes=GB80)
    assert (got.global_batch, got.micro_batch, got.accumulation, got.notes) == (16, 2, 1, ())


def test_indivisible_batch_is_rounded_down_with_a_note() -> None:
    got = plan(20, 8, device_bytes=GB80)
    assert got.global_batch == 16
    assert got.notes and "does not divide by the 8" in got.notes[0] and "using 16" in got.notes[0]


def test_batch_smaller_than_world_is_refused_never_zero() -> None:
    with pytest.raises(InputError) as err:
        plan(4, 8, device_bytes=GB80)
    assert "smaller than the 8 GPUs" in str(err.value) and "use 8" in str(err.value)
    with pytest.raises(InputError, match="smaller than the 3 training processes"):
        plan(2, 3, device="cpu")


def test_cpu_has_no_memory_limit() -> None:
    got = plan(3, 1, "debug", device="cpu")
    assert (got.global_batch, got.micro_batch, got.accumulation) == (3, 3, 1)
    assert got.source == "cpu: no memory limit"


def test_gpus_out_of_sight_get_no_limit_and_a_note() -> None:
    got = plan(16, 2, "small")  # device cuda, memory unknown (a SLURM submit host)
    assert (got.micro_batch, got.accumulation) == (8, 1)
    assert "not visible here" in got.notes[0] and "MUSICGEN_FT_MAX_MICRO_BATCH" in got.notes[0]


def test_the_default_job_keeps_its_batch_of_16_on_one_gpu() -> None:
    """stereo-melody with batch 16 used to become 1 (a cap of 8 on the 8-GPU box, / 8)."""
    one = plan(16, 1, "stereo-melody", device_bytes=GB80)
    assert one.global_batch == 16 and one.processes == 1
    assert one.micro_batch * one.accumulation == 16 and one.accumulation > 1
    assert "memory model" in one.source and "accumulation" not in " ".join(one.notes)
    eight = plan(16, 8, "stereo-melody", device_bytes=GB80)
    assert (eight.micro_batch, eight.accumulation) == (2, 1)
    small = plan(16, 1, "small", device_bytes=GB80)
    assert (small.micro_batch, small.accumulation) == (16, 1)  # small fits whole


def test_env_overrides_the_micro_batch_and_splits_evenly() -> None:
    got = plan(8, 1, "debug", device="cpu", env={"MUSICGEN_FT_MAX_MICRO_BATCH": "2"})
    assert (got.micro_batch, got.accumulation, got.source) == (
        2, 4, "MUSICGEN_FT_MAX_MICRO_BATCH=2",
    )  # fmt: skip
    two = plan(8, 2, "debug", device="cpu", env={"MUSICGEN_FT_MAX_MICRO_BATCH": "2"})
    assert (two.per_process, two.micro_batch, two.accumulation) == (4, 2, 2)
    # 7 per process, at most 3 at once: 3 micro-batches of 3, 2, 2 (not 3, 3, 1).
    odd = plan(7, 1, "debug", device="cpu", env={"MUSICGEN_FT_MAX_MICRO_BATCH": "3"})
    assert (odd.micro_batch, odd.accumulation) == (3, 3)
    assert micro_sizes(7, 3) == [3, 2, 2] and micro_sizes(8, 2) == [2, 2, 2, 2]
    assert micro_sizes(5, 8) == [5] and sum(micro_sizes(16, 5)) == 16


@pytest.mark.parametrize("raw", ["0", "two", "-1", "1.5"])
def test_bad_micro_batch_env_is_one_clear_line(raw: str) -> None:
    with pytest.raises(InputError) as err:
        plan(8, 1, "debug", device="cpu", env={"MUSICGEN_FT_MAX_MICRO_BATCH": raw})
    assert err.value.field == "MUSICGEN_FT_MAX_MICRO_BATCH" and "\n" not in str(err.value)
    assert "integer >= 1" in str(err.value)


def test_a_model_that_cannot_fit_the_gpu_is_refused_before_any_work() -> None:
    with pytest.raises(InputError) as err:
        plan(16, 1, "medium", device_bytes=GB24)
    message = str(err.value)
    assert err.value.field == "model_version" and "\n" not in message
    assert "medium needs about" in message and "MUSICGEN_FT_MAX_MICRO_BATCH=1" in message
    # Asked for anyway: it runs with a warning instead.
    forced = plan(16, 1, "medium", device_bytes=GB24, env={"MUSICGEN_FT_MAX_MICRO_BATCH": "1"})
    assert forced.accumulation == 16 and "may run out of memory" in forced.notes[0]


GB44 = 44 * 10**9  # between: the weights and state fit, one sample with all activations not
GB20 = 20 * 10**9


def test_smaller_cards_get_checkpointing_then_lora() -> None:
    """1.5B on smaller cards: activation checkpointing when not one sample fits with every
    activation kept; LoRA (no gradients or optimizer state for the frozen weights) below that."""
    roomy = plan(16, 1, "medium", optimizer="adamw", device_bytes=GB80)
    assert not roomy.checkpointing and roomy.micro_batch >= 4  # medium, batch 16, one 80 GB
    tight = plan(16, 1, "medium", optimizer="adamw", device_bytes=GB44)
    assert tight.checkpointing and tight.micro_batch >= 1
    assert "activation checkpointing on" in tight.notes[0]
    assert "activation checkpointing" in tight.describe() and tight.to_dict()["checkpointing"]
    with pytest.raises(InputError, match="train LoRA adapters \\(lora_rank=16\\)"):
        plan(16, 1, "medium", optimizer="adamw", device_bytes=GB24)
    small_card = plan(16, 1, "medium", optimizer="dadam", device_bytes=GB20, lora=True)
    assert small_card.checkpointing and small_card.global_batch == 16
    full = memory.estimate(get_variant("medium"), "adamw")
    adapters = memory.estimate(get_variant("medium"), "adamw", lora=True)
    recomputed = memory.estimate(get_variant("medium"), "adamw", checkpointing=True)
    assert adapters.static < 0.4 * full.static and adapters.per_sample == full.per_sample
    assert recomputed.per_sample < 0.2 * full.per_sample and recomputed.static == full.static


def test_memory_model_follows_the_shape() -> None:
    small, medium = memory.lm_shape(get_variant("small")), memory.lm_shape(get_variant("medium"))
    assert (small.dim, small.layers, small.heads, small.frames) == (1024, 24, 16, 1504)
    assert 0.38e9 < small.params < 0.45e9 and 1.7e9 < medium.params < 1.9e9  # 300M+ / 1.5B+
    for name in VARIANTS:  # every variant has a shape
        assert memory.lm_shape(get_variant(name)).params > 0
    s16 = memory.estimate(get_variant("small"), "adamw")
    s32 = memory.estimate(get_variant("small"), "adamw", autocast=False)
    dadam = memory.estimate(get_variant("small"), "dadam")
    stereo = memory.estimate(get_variant("stereo-small"), "adamw")
    assert s32.per_sample > 1.8 * s16.per_sample  # float32 activations
    assert dadam.static > s16.static  # one more optimizer state
    assert stereo.per_sample > s16.per_sample  # 8 codebooks of logits
    assert 1.0 * memory.GIB < s16.per_sample < 2.5 * memory.GIB
    no_sdpa = memory.estimate(get_variant("small"), "adamw", sdpa=False)
    assert no_sdpa.per_sample > 2 * s16.per_sample  # the T x T scores per head and layer
    assert s16.micro_batch(GB80) > s16.micro_batch(GB24) > 0


def test_plan_is_recorded_as_plain_data() -> None:
    got = plan(8, 2, "debug", device="cpu", env={"MUSICGEN_FT_MAX_MICRO_BATCH": "2"})
    assert got.to_dict() == {
        "global_batch": 8,
        "micro_batch": 2,
        "processes": 2,
        "accumulation": 2,
        "per_process": 4,
        "source": "MUSICGEN_FT_MAX_MICRO_BATCH=2",
        "checkpointing": False,
        "notes": [],
    }
    assert "2 process(es) x 4 per process, in 2 micro-batch(es) of at most 2" in got.describe()


@pytest.mark.parametrize(
    ("caps", "optimizer", "expected"),
    [
        (
            DeviceCaps("cuda", bf16=True),
            "adamw",
            ["autocast=true", "autocast_dtype=bfloat16", "++optim.adam.fused=true"],
        ),
        (
            DeviceCaps("cuda", bf16=False),
            "adamw",
            ["autocast=true", "autocast_dtype=float16", "++optim.adam.fused=true"],
        ),
        # D-Adapt Adam takes no `fused` option: AudioCraft passes optim.adam to it as kwargs.
        (DeviceCaps("cuda", bf16=True), "dadam", ["autocast=true", "autocast_dtype=bfloat16"]),
        (DeviceCaps("cpu"), "adamw", ["autocast=false"]),
    ],
)
def test_precision_rule(caps: DeviceCaps, optimizer: str, expected: list[str]) -> None:
    got = choose_precision(caps, optimizer, env={})
    sdpa = ["transformer_lm.memory_efficient=true", "efficient_attention_backend=torch"]
    assert got.overrides() == expected + sdpa
    assert got.grad_scaler is (caps.device == "cuda" and not caps.bf16)


def test_compile_is_opt_in() -> None:
    on = choose_precision(DeviceCaps("cuda", bf16=True), "adamw", env={"MUSICGEN_FT_COMPILE": "1"})
    assert on.overrides()[-1] == "+musicgen_ft_compile=true" and on.to_dict()["compile"] is True
    off = choose_precision(DeviceCaps("cuda", bf16=True), "adamw", env={})
    assert not any("compile" in o for o in off.overrides())
    with pytest.raises(InputError, match="MUSICGEN_FT_COMPILE='yes' must be 0 or 1"):
        choose_precision(DeviceCaps("cpu"), "adamw", env={"MUSICGEN_FT_COMPILE": "yes"})


def test_precision_overrides_compose_with_audiocraft() -> None:
    """bf16 + fused AdamW: Hydra accepts the keys and AudioCraft's optimizer builder the option."""
    import torch
    from audiocraft.solvers import builders

    from training.hydra_config import compose_config

    overrides = [
        "solver=musicgen/musicgen_base_32khz",
        "dset=audio/musicgen_ft",
        "optim.optimizer=adamw",
        *choose_precision(DeviceCaps("cuda", bf16=True), "adamw", env={}).overrides(),
    ]
    cfg = compose_config(overrides)
    assert cfg.autocast is True and cfg.autocast_dtype == "bfloat16"
    assert cfg.transformer_lm.memory_efficient is True and cfg.optim.adam.fused is True
    optimizer = builders.get_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg.optim)
    assert optimizer.defaults["fused"] is True


def test_device_queries_with_a_stubbed_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import torch

    from training.precision import device_caps

    assert device_caps("cpu") == DeviceCaps("cpu") and memory.device_memory("cpu") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_caps("cuda") == DeviceCaps("cuda", bf16=False)  # GPUs elsewhere: fp16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert device_caps("cuda") == DeviceCaps("cuda", bf16=True)
    sizes = {0: 80 * 10**9, 1: 40 * 10**9}
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(
        torch.cuda,
        "get_device_properties",
        lambda i: types.SimpleNamespace(total_memory=sizes[i]),
    )
    assert memory.device_memory("cuda") == 40 * 10**9  # the smallest GPU sets the plan
