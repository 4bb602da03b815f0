"""The Dora/Hydra override list of a fine-tune: a pure function of the job's plan.

Nothing here touches the disk or the GPUs; `launch.py` runs what this returns. Golden tests pin
the list for every variant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from musicgen_ft.constants import CHUNK_SECONDS
from musicgen_ft.inputs import TrainInputs
from musicgen_ft.variants import Variant
from training.precision import DeviceCaps, Precision, choose_precision

# Schedulers whose AudioCraft config has a `warmup` key.
_WARMUP_SCHEDULERS = ("cosine", "polynomial_decay", "inverse_sqrt", "linear_warmup")
# The exponential schedule decays to this fraction of the peak lr over the whole run.
EXPONENTIAL_FINAL_RATIO = 0.01
# Progress lines (step, loss, rate) the solver logs per epoch.
LOG_LINES_PER_EPOCH = 20


@dataclass(frozen=True)
class TrainPlan:
    """Everything the override list depends on, resolved by the pipeline.

    Attributes:
        inputs: The validated job inputs.
        variant: The base model's spec.
        base_model_dir: Directory with the base `state_dict.bin` and
            `compression_state_dict.bin` (released format).
        egs_dir: Directory holding the `train/` and `valid/` manifests.
        batch_size: Global batch size after the world-size rule (training/batching.py).
        world_size: Number of training processes (GPUs, or 1 on CPU).
        micro_batch: Most samples a process computes at once (gradient accumulation over the
            rest of its share of the batch); None: its whole share.
        device: "cuda" or "cpu".
        valid_examples: Number of validation chunks.
        ema: Whether to keep an exponential moving average of the weights.
        num_workers: Data-loader workers per process.
        architecture: Overrides that rebuild the base checkpoint's LM (training/base_config.py);
            None: the variant's own table (unit tests of the list itself).
        job_id: The job's identity (training/identity.py); part of Dora's experiment signature,
            so a different job never resumes another's checkpoint.
        precision: Autocast, fused optimizer, attention, compile (training/precision.py);
            None: the rule for `device` without bfloat16 (AudioCraft's fp16 on CUDA).
        checkpointing: Activation checkpointing of the LM's layers (training/batching.py).
        token_cache: Cache root of the chunks' codes (training/token_cache.py); None: the
            compression model encodes every batch.
    """

    inputs: TrainInputs
    variant: Variant
    base_model_dir: Path
    egs_dir: Path
    batch_size: int
    world_size: int
    device: str
    valid_examples: int
    ema: bool = False
    num_workers: int = 2
    job_id: str = ""
    architecture: tuple[str, ...] | None = None
    micro_batch: int | None = None
    precision: Precision | None = None
    token_cache: Path | None = None
    checkpointing: bool = False

    @property
    def total_updates(self) -> int:
        return self.inputs.epochs * self.inputs.updates_per_epoch

    @property
    def per_process_micro_batch(self) -> int:
        per_process = self.batch_size // self.world_size
        return min(self.micro_batch or per_process, per_process)

    @property
    def resolved_precision(self) -> Precision:
        if self.precision is not None:
            return self.precision
        return choose_precision(DeviceCaps(device=self.device), self.inputs.optimizer, env={})


def warmup_steps(warmup: int, total_updates: int) -> int:
    """The warmup, kept below the run's length: AudioCraft's cosine schedule divides by
    (total - warmup) at the last step, and a warmup as long as the run never reaches the lr."""
    return max(0, min(warmup, total_updates - 1))


def schedule_overrides(inputs: TrainInputs, total_updates: int) -> list[str]:
    name = inputs.lr_scheduler
    if name == "none":
        return ["schedule.lr_scheduler=null"]
    out = [f"schedule.lr_scheduler={name}"]
    if name in _WARMUP_SCHEDULERS:
        out.append(f"schedule.{name}.warmup={warmup_steps(inputs.warmup, total_updates)}")
    if name == "exponential":
        decay = EXPONENTIAL_FINAL_RATIO ** (1.0 / max(1, total_updates))
        out.append(f"schedule.exponential.lr_decay={decay:.8f}")
    return out


def build_overrides(plan: TrainPlan) -> list[str]:
    """Return the Hydra overrides for `dora run` of this plan, in a stable order."""
    v, inp = plan.variant, plan.inputs
    base = plan.base_model_dir.resolve()
    egs = plan.egs_dir.resolve()
    # Every training process must see at least one validation example (a rank with an empty
    # loader crashes AudioCraft's metric averaging): round up to a multiple of the world size,
    # repeating examples when there are fewer than processes.
    world = plan.world_size
    valid_samples = world * math.ceil(max(1, plan.valid_examples) / world)
    overrides = [
        f"solver={v.solver}",
        "dset=audio/musicgen_ft",
        *(v.lm_overrides if plan.architecture is None else plan.architecture),
        f"sample_rate={v.sample_rate}",
        f"channels={v.channels}",
        f"continue_from=//pretrained/{base}",
        f"compression_model_checkpoint=//pretrained/{base}",
        f"datasource.max_sample_rate={v.sample_rate}",
        f"datasource.max_channels={v.channels}",
        f"datasource.train={egs / 'train'}",
        f"datasource.valid={egs / 'valid'}",
        f"datasource.evaluate={egs / 'valid'}",
        f"datasource.generate={egs / 'valid'}",
        f"device={plan.device}",
        *plan.resolved_precision.overrides(),
        f"seed={inp.seed}",
        f"dataset.batch_size={plan.batch_size}",
        f"+musicgen_ft_micro_batch={plan.per_process_micro_batch}",
        f"dataset.num_workers={plan.num_workers}",
        f"dataset.segment_duration={CHUNK_SECONDS:g}",
        # No training on padding: chunks are cut at the segment length, so a segment never
        # starts past a chunk's start (AudioCraft's default ratio of 0.8 seeks up to 6 s in and
        # pads the rest with silence); a shorter tail chunk is padded with the special token,
        # which the loss mask leaves out.
        "dataset.min_segment_ratio=1.0",
        "tokens.padding_with_special_token=true",
        f"dataset.valid.num_samples={valid_samples}",
        f"dataset.evaluate.num_samples={valid_samples}",
        # AudioCraft's own generate stage gets no examples: its clips (30 s, prompted and
        # unprompted, left in the work dir) are replaced by the job's listening samples
        # (evaluation/samples.py), generated from the exported model beside the base model's.
        "dataset.generate.num_samples=0",
        f"optim.epochs={inp.epochs}",
        f"optim.updates_per_epoch={inp.updates_per_epoch}",
        f"optim.optimizer={inp.optimizer}",
        f"optim.lr={inp.lr:g}",
        f"optim.ema.use={'true' if plan.ema else 'false'}",
        f"optim.ema.device={plan.device}",
        *schedule_overrides(inp, plan.total_updates),
        f"classifier_free_guidance.training_dropout={inp.cfg_p:g}",
        # Labels are merged into the description as augmentation, but the description itself
        # is never dropped: every example keeps a non-empty text (AudioCraft's default of
        # drop_desc_p=0.5 can leave an example with no text at all).
        "dataset.train.merge_text_p=0.25",
        "dataset.train.drop_desc_p=0.0",
        "dataset.train.drop_other_p=0.5",
        # Evaluate once, at the end of the run (AudioCraft always runs it on the last epoch).
        # `checkpoint.th` is rewritten every epoch and holds both the last state (to resume)
        # and the best one (exported); no per-epoch copies are kept
        # (AudioCraft 1.3.0 ignores `keep_last`, so `save_every` would keep every epoch's).
        f"evaluate.every={inp.epochs}",
        f"generate.every={inp.epochs}",
        f"generate.lm.top_k={min(250, v.card)}",
        "generate.audio.strategy=peak",
        "checkpoint.save_last=true",
        "checkpoint.save_every=0",
        "logging.log_tensorboard=false",
        f"logging.log_updates={min(inp.updates_per_epoch, LOG_LINES_PER_EPOCH)}",
    ]
    if plan.job_id:
        overrides.append(f"+musicgen_ft_job={plan.job_id}")
    if inp.early_stopping > 0:
        overrides.append(f"+musicgen_ft_early_stopping={inp.early_stopping}")
    if plan.checkpointing:
        overrides.append("transformer_lm.checkpointing=torch")
    if inp.lora_rank > 0:
        overrides.append(f"+musicgen_ft_lora_rank={inp.lora_rank}")
    if plan.token_cache is not None:
        overrides.append(f"+musicgen_ft_token_cache={plan.token_cache.resolve()}")
    return overrides


def hyperparameter_notes(inputs: TrainInputs) -> list[str]:
    """Warnings for settings that do not do what users usually expect."""
    notes = []
    total = inputs.epochs * inputs.updates_per_epoch
    warmup = warmup_steps(inputs.warmup, total)
    if inputs.lr_scheduler in _WARMUP_SCHEDULERS and warmup != inputs.warmup:
        notes.append(
            f"warmup={inputs.warmup} is not shorter than the run's {total} updates; using {warmup}"
        )
    if inputs.optimizer == "dadam" and inputs.lr < 0.1:
        notes.append(
            f"optimizer=dadam with lr={inputs.lr:g}: D-Adaptation scales its own step size by "
            "lr, so values far below 1 nearly freeze training; for small learning rates use "
            "optimizer=adamw"
        )
    if inputs.optimizer == "adamw" and inputs.lr >= 0.01:
        notes.append(
            f"optimizer=adamw with lr={inputs.lr:g} is likely to diverge; 1e-5..1e-4 is usual "
            "for fine-tuning"
        )
    return notes
