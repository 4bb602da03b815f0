"""Golden override lists per kind of variant, and a check that Hydra composes each of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicgen_ft.inputs import TrainInputs
from musicgen_ft.variants import VARIANTS, get_variant
from training.overrides import (
    TrainPlan,
    build_overrides,
    hyperparameter_notes,
    schedule_overrides,
    warmup_steps,
)
from training.precision import DeviceCaps, choose_precision

COMMON_TAIL = [
    "datasource.train=/job/egs/train",
    "datasource.valid=/job/egs/valid",
    "datasource.evaluate=/job/egs/valid",
    "datasource.generate=/job/egs/valid",
    "device=cuda",
    "autocast=true",
    "autocast_dtype=float16",
    "transformer_lm.memory_efficient=true",
    "efficient_attention_backend=torch",
    "seed=2036",
    "dataset.batch_size=16",
    "+musicgen_ft_micro_batch=2",
    "dataset.num_workers=2",
    "dataset.segment_duration=30",
    "dataset.min_segment_ratio=1.0",
    "tokens.padding_with_special_token=true",
    "dataset.valid.num_samples=8",
    "dataset.evaluate.num_samples=8",
    "dataset.generate.num_samples=0",
    "optim.epochs=3",
    "optim.updates_per_epoch=100",
    "optim.optimizer=dadam",
    "optim.lr=1",
    "optim.ema.use=false",
    "optim.ema.device=cuda",
    "schedule.lr_scheduler=cosine",
    "schedule.cosine.warmup=8",
    "classifier_free_guidance.training_dropout=0.3",
    "dataset.train.merge_text_p=0.25",
    "dataset.train.drop_desc_p=0.0",
    "dataset.train.drop_other_p=0.5",
    "evaluate.every=3",
    "generate.every=3",
    "generate.lm.top_k=250",
    "generate.audio.strategy=peak",
    "checkpoint.save_last=true",
    "checkpoint.save_every=0",
    "logging.log_tensorboard=false",
    "logging.log_updates=20",
]


def plan_for(name: str, **changes: object) -> TrainPlan:
    values: dict[str, object] = {
        "inputs": TrainInputs(dataset_path="d.zip", model_version=name),
        "variant": get_variant(name),
        "base_model_dir": Path(f"/models/{name}"),
        "egs_dir": Path("/job/egs"),
        "batch_size": 16,
        "world_size": 8,
        "device": "cuda",
        "valid_examples": 3,
    }
    values.update(changes)
    return TrainPlan(**values)  # type: ignore[arg-type]


def head(name: str, solver: str, lm: list[str], channels: int) -> list[str]:
    return [
        f"solver=musicgen/{solver}",
        "dset=audio/musicgen_ft",
        *lm,
        "sample_rate=32000",
        f"channels={channels}",
        f"continue_from=//pretrained//models/{name}",
        f"compression_model_checkpoint=//pretrained//models/{name}",
        "datasource.max_sample_rate=32000",
        f"datasource.max_channels={channels}",
    ]


def test_golden_mono() -> None:
    expected = head("small", "musicgen_base_32khz", ["model/lm/model_scale=small"], 1)
    assert build_overrides(plan_for("small")) == expected + COMMON_TAIL


def test_golden_stereo_interleaves_codebooks() -> None:
    lm = [
        "model/lm/model_scale=medium",
        "interleave_stereo_codebooks.use=true",
        "transformer_lm.n_q=8",
        "codebooks_pattern.delay.delays=[0,0,1,1,2,2,3,3]",
    ]
    expected = head("stereo-medium", "musicgen_base_32khz", lm, 2)
    assert build_overrides(plan_for("stereo-medium")) == expected + COMMON_TAIL


def test_golden_melody_uses_the_chroma_solver() -> None:
    expected = head("melody", "musicgen_melody_32khz", ["model/lm/model_scale=medium"], 1)
    assert build_overrides(plan_for("melody")) == expected + COMMON_TAIL


def test_golden_stereo_melody() -> None:
    lm = [
        "model/lm/model_scale=medium",
        "interleave_stereo_codebooks.use=true",
        "transformer_lm.n_q=8",
        "codebooks_pattern.delay.delays=[0,0,1,1,2,2,3,3]",
    ]
    expected = head("stereo-melody", "musicgen_melody_32khz", lm, 2)
    assert build_overrides(plan_for("stereo-melody")) == expected + COMMON_TAIL


def test_golden_debug_on_cpu() -> None:
    plan = plan_for("debug", device="cpu", world_size=1, num_workers=0)
    got = build_overrides(plan)
    assert (
        got[:9]
        == head(
            "debug",
            "musicgen_base_32khz",
            [
                "model/lm/model_scale=debug",
                "transformer_lm.card=64",
                "conditioners.description.model=lut",
                "+conditioners.description.lut.n_bins=256",
                "+conditioners.description.lut.dim=32",
                "+conditioners.description.lut.tokenizer=noop",
            ],
            1,
        )[:9]
    )
    assert "device=cpu" in got and "autocast=false" in got and "optim.ema.device=cpu" in got
    assert "generate.lm.top_k=64" in got  # never above the codebook size
    assert "dataset.num_workers=0" in got


@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [
        ("cosine", ["schedule.lr_scheduler=cosine", "schedule.cosine.warmup=8"]),
        (
            "linear_warmup",
            ["schedule.lr_scheduler=linear_warmup", "schedule.linear_warmup.warmup=8"],
        ),
        ("inverse_sqrt", ["schedule.lr_scheduler=inverse_sqrt", "schedule.inverse_sqrt.warmup=8"]),
        (
            "polynomial_decay",
            ["schedule.lr_scheduler=polynomial_decay", "schedule.polynomial_decay.warmup=8"],
        ),
        ("none", ["schedule.lr_scheduler=null"]),
    ],
)
def test_schedules_carry_the_warmup(scheduler: str, expected: list[str]) -> None:
    inputs = TrainInputs(dataset_path="d", lr_scheduler=scheduler)
    assert schedule_overrides(inputs, 300) == expected


def test_exponential_schedule_decays_to_one_percent() -> None:
    out = schedule_overrides(TrainInputs(dataset_path="d", lr_scheduler="exponential"), 100)
    decay = float(out[1].split("=")[1])
    assert out[0] == "schedule.lr_scheduler=exponential"
    assert decay**100 == pytest.approx(0.01, rel=1e-3)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_hydra_composes_every_variant(name: str) -> None:
    """The overrides are valid against AudioCraft's config tree plus ours (no weights needed)."""
    from training.hydra_config import compose_config

    cfg = compose_config(build_overrides(plan_for(name)))
    variant = VARIANTS[name]
    assert cfg.solver == "musicgen"
    assert cfg.transformer_lm.n_q == variant.n_q
    assert cfg.transformer_lm.card == variant.card
    assert cfg.channels == variant.channels
    assert cfg.interleave_stereo_codebooks.use is variant.stereo
    assert cfg.datasource.train == "/job/egs/train"
    assert cfg.optim.epochs == 3 and cfg.optim.updates_per_epoch == 100
    assert cfg.schedule.cosine.warmup == 8
    assert ("self_wav" in cfg.conditioners) is variant.melody
    expected_dim = {"small": 1024, "stereo-small": 1024, "debug": 64, "debug-stereo": 64}.get(
        name, 1536
    )
    assert cfg.transformer_lm.dim == expected_dim


def test_every_process_gets_a_validation_example() -> None:
    got = build_overrides(plan_for("small", valid_examples=11))
    assert "dataset.valid.num_samples=16" in got  # rounded up to a multiple of 8
    cpu = build_overrides(plan_for("debug", world_size=1, device="cpu", valid_examples=11))
    assert "dataset.valid.num_samples=11" in cpu
    # AudioCraft's own generate stage runs on no example (the job's samples replace it).
    assert "dataset.generate.num_samples=0" in got and "dataset.generate.num_samples=0" in cpu


def test_no_training_on_padding(tmp_path: Path) -> None:
    """A full chunk is never sampled past its start (no silent tail); a short tail chunk says how
    many of its frames are real, which the solver turns into the special token and the loss mask."""
    import numpy as np
    import soundfile as sf
    from audiocraft.data.audio_dataset import AudioDataset, AudioMeta

    from training.hydra_config import compose_config

    cfg = compose_config(build_overrides(plan_for("debug", device="cpu", world_size=1)))
    assert cfg.tokens.padding_with_special_token is True
    rate, seconds = 32000, float(cfg.dataset.segment_duration)
    rng = np.random.default_rng(0)
    metas = []
    for name, length in (("full.wav", seconds), ("tail.wav", 10.0)):
        path = tmp_path / name
        sf.write(str(path), rng.uniform(-0.5, 0.5, int(length * rate)).astype(np.float32), rate)
        metas.append(AudioMeta(path=str(path), duration=length, sample_rate=rate))
    dataset = AudioDataset(
        metas,
        segment_duration=seconds,
        sample_rate=rate,
        channels=1,
        num_samples=40,
        min_segment_ratio=cfg.dataset.min_segment_ratio,
        return_info=True,
        shuffle=True,
    )
    for index in range(40):
        wav, info = dataset[index]
        if info.meta.path.endswith("full.wav"):
            assert info.n_frames == info.total_frames == int(seconds * rate)
            assert float(wav[..., -rate:].abs().max()) > 0.1  # real audio up to the end
        else:
            assert info.n_frames == int(10.0 * rate) < info.total_frames


def test_micro_batch_and_precision_reach_the_solver() -> None:
    bf16 = choose_precision(DeviceCaps("cuda", bf16=True), "adamw", env={})
    got = build_overrides(plan_for("small", world_size=1, micro_batch=5, precision=bf16))
    assert "dataset.batch_size=16" in got and "+musicgen_ft_micro_batch=5" in got
    assert "autocast_dtype=bfloat16" in got and "++optim.adam.fused=true" in got
    whole = build_overrides(plan_for("small", world_size=2))
    assert "+musicgen_ft_micro_batch=8" in whole  # no accumulation: the process's whole share
    cpu = build_overrides(plan_for("debug", world_size=1, device="cpu"))
    assert "autocast=false" in cpu and not any("autocast_dtype" in o for o in cpu)


def test_warmup_is_kept_below_the_run_length() -> None:
    """AudioCraft's cosine schedule divides by (total - warmup) at its last step."""
    import torch
    from audiocraft.optim import CosineLRScheduler

    def run(warmup: int, total: int) -> list[float]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = CosineLRScheduler(opt, total_steps=total, warmup_steps=warmup)
        lrs = []
        for _ in range(total):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return lrs

    with pytest.raises(ZeroDivisionError):
        run(8, 8)  # AudioCraft as is: warmup == total updates
    assert warmup_steps(8, 8) == 7 and warmup_steps(8, 3) == 2 and warmup_steps(8, 300) == 8
    assert warmup_steps(8, 1) == 0 and warmup_steps(0, 5) == 0
    assert max(run(warmup_steps(8, 8), 8)) == 1.0  # the lr is reached, then decays
    assert run(warmup_steps(8, 1), 1) == [1.0]
    short = TrainInputs(dataset_path="d", epochs=1, updates_per_epoch=8)
    assert schedule_overrides(short, 8) == [
        "schedule.lr_scheduler=cosine",
        "schedule.cosine.warmup=7",
    ]
    assert any("warmup=8 is not shorter than the run's 8 updates; using 7" in n
               for n in hyperparameter_notes(short))  # fmt: skip
    assert not any("warmup" in n for n in hyperparameter_notes(TrainInputs(dataset_path="d")))


def test_hardware_choices_are_not_part_of_the_experiment(tmp_path: Path) -> None:
    """Another GPU (bf16 or not, its memory: the micro-batch) resumes the same experiment."""
    from training.launch import experiment_folder

    fp16 = choose_precision(DeviceCaps("cuda", bf16=False), "adamw", env={})
    bf16 = choose_precision(
        DeviceCaps("cuda", bf16=True), "adamw", env={"MUSICGEN_FT_COMPILE": "1"}
    )
    inputs = TrainInputs(dataset_path="d.zip", model_version="small", optimizer="adamw")
    one = experiment_folder(
        build_overrides(plan_for("small", inputs=inputs, precision=fp16)), tmp_path
    )
    other = build_overrides(plan_for("small", inputs=inputs, precision=bf16, micro_batch=1))
    assert experiment_folder(other, tmp_path) == one
    changed = TrainInputs(dataset_path="d.zip", model_version="small", optimizer="adamw", lr=2e-4)
    assert experiment_folder(build_overrides(plan_for("small", inputs=changed)), tmp_path) != one
