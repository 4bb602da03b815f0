"""The one place that orders and times the stages of a fine-tune.

    fetch + prepare → vocals → labels → manifest → train → export

Cog's `train()`, the CLI (`train.py`) and the trainings server all call `run_job`; none of them
holds pipeline logic. Every stage writes under its own folder of the job's work dir, which is
kept after a failure so it can be inspected.
"""

from __future__ import annotations

import logging
import platform
import re
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicgen_ft import __version__
from musicgen_ft.errors import StageUnavailableError
from musicgen_ft.inputs import TrainInputs
from musicgen_ft.types import Chunk, DatasetReport, Labels
from musicgen_ft.variants import Variant, get_variant

logger = logging.getLogger("musicgen_ft")

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class StageTimes:
    """Wall time of each stage, in the order they ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        logger.info("[%s] started", name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start
            logger.info("[%s] done in %.1f s", name, self.seconds[name])

    def table(self) -> str:
        total = sum(self.seconds.values())
        width = max([len(k) for k in self.seconds] + [5])
        lines = [f"{'stage':<{width}}  seconds", f"{'-' * width}  -------"]
        lines += [f"{name:<{width}}  {sec:7.1f}" for name, sec in self.seconds.items()]
        lines.append(f"{'total':<{width}}  {total:7.1f}")
        return "\n".join(lines)


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its largest child (Linux: KiB units)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"pipeline_mb": round(own, 1), "training_mb": round(children, 1)}


@dataclass
class JobResult:
    tar_path: Path
    metadata: dict[str, Any]
    times: StageTimes


@dataclass
class Resources:
    device: str
    world_size: int


def detect_resources() -> Resources:
    from training.launch import visible_gpus

    gpus = visible_gpus()
    return Resources(device="cuda" if gpus else "cpu", world_size=max(1, gpus))


def versions() -> dict[str, str]:
    import audiocraft
    import torch

    return {
        "musicgen_ft": __version__,
        "audiocraft": audiocraft.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _vocals(chunks: list[Chunk], inputs: TrainInputs, variant: Variant, workdir: Path,
            report: DatasetReport) -> list[Chunk]:
    try:
        from preprocessing import vocals
    except ImportError:
        raise StageUnavailableError(
            "drop_vocals=true: vocal removal is not available in this build; "
            "pass --drop_vocals false"
        ) from None
    settings = vocals.VocalSettings()
    chunks, summary = vocals.remove_vocals(chunks, settings, workdir)
    report.vocal_removal = summary
    return chunks


def run_job(
    inputs: TrainInputs,
    output_dir: Path,
    resources: Resources | None = None,
) -> JobResult:
    """Run a whole fine-tune; write `output_dir/trained_model.tar` and return it.

    Raises a FineTuneError subclass with a one-line reason on any user-facing failure.
    """
    from labeling.describe import music_info
    from musicgen_ft.weights import ensure_variant_weights
    from preprocessing.audio import PrepSettings
    from preprocessing.fetch import FetchSettings
    from preprocessing.stage import prepare
    from training.export import TAR_NAME, write_tar
    from training.launch import run_training
    from training.manifest import write_manifest
    from training.overrides import TrainPlan, build_overrides, plan_batch_size

    inputs = inputs.validate()
    variant = get_variant(inputs.model_version)
    resources = resources or detect_resources()
    output_dir.mkdir(parents=True, exist_ok=True)
    workdir = output_dir / "work"
    times = StageTimes()
    notes: list[str] = []

    # Everything that can be refused is checked before any heavy work.
    with times.stage("check"):
        batch_size, batch_notes = plan_batch_size(
            inputs.batch_size, resources.world_size, variant
        )
        notes += batch_notes + hyperparameter_notes(inputs)
        for note in notes:
            logger.warning("%s", note)
        base_dir = ensure_variant_weights(variant)
        if inputs.drop_vocals:
            try:
                from preprocessing import vocals as _vocals_mod
            except ImportError:
                raise StageUnavailableError(
                    "drop_vocals=true: vocal removal is not available in this build; "
                    "pass --drop_vocals false"
                ) from None
            _vocals_mod.check_available(_vocals_mod.VocalSettings())
        if inputs.auto_labeling:
            _label_stage_module()
        logger.info(
            "model_version=%s base=%s device=%s processes=%d batch_size=%d",
            variant.name, base_dir, resources.device, resources.world_size, batch_size,
        )

    with times.stage("prepare"):
        settings = PrepSettings(sample_rate=variant.sample_rate, channels=variant.channels)
        fetch_settings = FetchSettings(allow_private=inputs.allow_private_urls)
        dataset = prepare(inputs.dataset_path, settings, workdir / "prepare", fetch_settings)
        report = dataset.report
        logger.info(
            "dataset: %d files used, %d rejected, %d chunks, %.1f min",
            len(report.files_used), len(report.files_rejected), report.chunks, report.minutes,
        )
        for rejected in report.files_rejected:
            logger.warning("skipped %s: %s", rejected.path, rejected.reason)
    chunks = dataset.chunks

    if inputs.drop_vocals:
        with times.stage("vocals"):
            chunks = _vocals(chunks, inputs, variant, workdir / "vocals", report)
    else:
        report.vocal_removal = {"applied": False, "reason": "drop_vocals=false"}

    labels: dict[str, Labels] = {}
    if inputs.auto_labeling:
        with times.stage("labels"):
            labels = _labels(chunks, workdir / "labels", report)
    else:
        report.labeling = {"applied": False, "reason": "auto_labeling=false"}

    with times.stage("manifest"):
        infos = {
            c.chunk_id: music_info(c, labels.get(c.chunk_id), inputs.one_same_description)
            for c in chunks
        }
        manifest = write_manifest(chunks, infos, workdir / "manifest", inputs.seed)
        logger.info("manifest: %d train, %d valid (%s)", manifest.train, manifest.valid,
                    manifest.split_note)

    plan = TrainPlan(
        inputs=inputs,
        variant=variant,
        base_model_dir=base_dir,
        egs_dir=manifest.egs_dir,
        batch_size=batch_size,
        world_size=resources.world_size,
        device=resources.device,
        valid_examples=manifest.valid,
        num_workers=2 if resources.device == "cuda" else 0,
    )
    overrides = build_overrides(plan)
    with times.stage("train"):
        xp_dir = run_training(
            overrides,
            resources.world_size,
            workdir / "train" / "dora",
            output_dir / "training.log",
            on_line=_forward_training_line,
        )

    with times.stage("export"):
        metadata = {
            "format": 1,
            "inputs": inputs.to_dict(),
            "model_version": variant.name,
            "base_model": {"name": variant.name, "hf_repo": variant.hf_repo},
            "sample_rate": variant.sample_rate,
            "channels": variant.channels,
            "dataset": report.to_dict(),
            "split": {"train": manifest.train, "valid": manifest.valid,
                      "note": manifest.split_note},
            "training": {
                "batch_size": batch_size,
                "world_size": resources.world_size,
                "device": resources.device,
                "total_updates": plan.total_updates,
                "overrides": overrides,
                "notes": notes,
            },
            "versions": versions(),
            "timings": dict(times.seconds),
        }
        tar_path = write_tar(output_dir / TAR_NAME, xp_dir, metadata)
    metadata["timings"] = dict(times.seconds)
    metadata["peak_memory"] = peak_memory_mb()
    return JobResult(tar_path=tar_path, metadata=metadata, times=times)


def hyperparameter_notes(inputs: TrainInputs) -> list[str]:
    """Warnings for settings that do not do what users usually expect."""
    notes = []
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


def _label_stage_module():  # type: ignore[no-untyped-def]
    try:
        from labeling import stage as label_stage
    except ImportError:
        raise StageUnavailableError(
            "auto_labeling=true: auto-labeling is not available in this build; "
            "pass --auto_labeling false"
        ) from None
    return label_stage


def _labels(chunks: list[Chunk], workdir: Path, report: DatasetReport) -> dict[str, Labels]:
    label_stage = _label_stage_module()
    result = label_stage.run(chunks, label_stage.LabelSettings(), workdir)
    report.labeling = result.report
    return result.labels


_TRAINING_LINE = re.compile(r"(Train|Valid|Generate|Evaluate)( Summary)? \|")


def _forward_training_line(line: str) -> None:
    """Surface the solver's progress lines (steps, loss, rate) in the job's log."""
    clean = ANSI.sub("", line).strip()
    if not clean:
        return
    if _TRAINING_LINE.search(clean) or "Error" in clean or "error" in clean:
        logger.info("[train] %s", clean.split(" - ", 1)[-1])
    else:
        logger.debug("[train] %s", clean)
