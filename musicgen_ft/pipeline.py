"""The one place that orders and times the stages of a fine-tune.

    check → fetch + prepare → vocals → labels → manifest → train → export

Cog's `train()`, the CLI (`train.py`) and the trainings server all call `run_job`; none of them
holds pipeline logic. Every stage writes under its own folder of the job's work dir, which is
kept after a failure so it can be inspected.
"""

from __future__ import annotations

import logging
import os
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
from musicgen_ft.inputs import TrainInputs
from musicgen_ft.types import Chunk, Labels
from musicgen_ft.variants import get_variant
from training.launch import Topology

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
    tar_path: Path | None  # None on nodes other than node 0 of a multi-node job
    metadata: dict[str, Any]
    times: StageTimes


CPU_PROCESSES_ENV = "MUSICGEN_FT_CPU_PROCESSES"
NNODES_ENV = "MUSICGEN_FT_NNODES"
NODE_RANK_ENV = "MUSICGEN_FT_NODE_RANK"
RDZV_ENV = "MUSICGEN_FT_RDZV_ENDPOINT"
LAUNCHER_ENV = "MUSICGEN_FT_LAUNCHER"


def _env_int(name: str, default: int, minimum: int) -> int:
    from musicgen_ft.errors import InputError

    raw = os.environ.get(name, str(default)).strip()
    if not raw.isdigit() or int(raw) < minimum:
        raise InputError(name, f"{name}={raw!r} must be an integer >= {minimum}")
    return int(raw)


def detect_resources() -> Topology:
    """Every visible GPU runs one training process; without GPUs, CPU processes (default 1).

    Environment:
        MUSICGEN_FT_CPU_PROCESSES: N data-parallel CPU processes (gloo) on a box without GPUs.
        MUSICGEN_FT_LAUNCHER: `dora` (default) or `torchrun`.
        MUSICGEN_FT_NNODES, MUSICGEN_FT_NODE_RANK, MUSICGEN_FT_RDZV_ENDPOINT: multi-node
            training: run the same job on every node (node-local or distinct output dirs),
            with node 0's `host:port` as the rendezvous; node 0 writes trained_model.tar.
    """
    from musicgen_ft.errors import InputError
    from training.launch import visible_gpus

    gpus = visible_gpus()
    device = "cuda" if gpus else "cpu"
    per_node = gpus or _env_int(CPU_PROCESSES_ENV, 1, 1)
    nnodes = _env_int(NNODES_ENV, 1, 1)
    node_rank = _env_int(NODE_RANK_ENV, 0, 0)
    endpoint = os.environ.get(RDZV_ENV) or None
    launcher = os.environ.get(LAUNCHER_ENV, "dora")
    if launcher not in ("dora", "torchrun"):
        raise InputError(LAUNCHER_ENV, f"{LAUNCHER_ENV}={launcher!r}: use dora or torchrun")
    if nnodes > 1 and not endpoint:
        raise InputError(RDZV_ENV, f"{NNODES_ENV}={nnodes} needs {RDZV_ENV}=host:port of node 0")
    if node_rank >= nnodes:
        raise InputError(NODE_RANK_ENV, f"{NODE_RANK_ENV}={node_rank} must be < {nnodes}")
    return Topology(
        device=device,
        world_size=per_node * nnodes,
        nnodes=nnodes,
        node_rank=node_rank,
        rdzv_endpoint=endpoint,
        launcher="torchrun" if nnodes > 1 else launcher,
    )


def versions() -> dict[str, str]:
    import audiocraft
    import torch

    return {
        "musicgen_ft": __version__,
        "audiocraft": audiocraft.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


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


def data_workers(device: str, world_size: int) -> int:
    """Data-loader workers per training process."""
    if device != "cuda":
        return 0
    return max(1, min(4, (os.cpu_count() or 2) // world_size - 1))


def run_job(
    inputs: TrainInputs,
    output_dir: Path,
    resources: Topology | None = None,
) -> JobResult:
    """Run a whole fine-tune; write `output_dir/trained_model.tar` and return it.

    Raises a FineTuneError subclass with a one-line reason on any user-facing failure.
    """
    from labeling import review
    from labeling import stage as labeling
    from labeling.models import default_models_dir
    from labeling.vocabulary import build_vocabulary
    from musicgen_ft.weights import ensure_variant_weights
    from preprocessing import vocals
    from preprocessing.audio import PrepSettings
    from preprocessing.cache import default_cache_dir
    from preprocessing.fetch import FetchSettings, fetch
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
    vocal_settings = vocals.VocalSettings(
        enabled=inputs.drop_vocals, model=inputs.demucs_model
    ).validate()
    label_settings = labeling.LabelSettings(
        enabled=inputs.auto_labeling, models_dir=default_models_dir()
    )

    # Everything that can be refused is checked before any heavy work.
    with times.stage("check"):
        batch_size, batch_notes = plan_batch_size(inputs.batch_size, resources.world_size, variant)
        notes += batch_notes + hyperparameter_notes(inputs)
        for note in notes:
            logger.warning("%s", note)
        fetch_settings = FetchSettings(allow_private=inputs.allow_private_urls)
        label_overrides = {}
        if inputs.labels_file:
            labels_path = fetch(inputs.labels_file, workdir / "labels_file", fetch_settings)
            label_overrides = review.load_overrides(labels_path)
        base_dir = ensure_variant_weights(variant)
        if inputs.drop_vocals:
            vocals.check_available(vocal_settings)
        logger.info(
            "model_version=%s base=%s device=%s processes=%d batch_size=%d",
            variant.name,
            base_dir,
            resources.device,
            resources.world_size,
            batch_size,
        )

    with times.stage("prepare"):
        settings = PrepSettings(sample_rate=variant.sample_rate, channels=variant.channels)
        dataset = prepare(
            inputs.dataset_path,
            settings,
            workdir / "prepare",
            fetch_settings,
            cache_dir=default_cache_dir() / "prep",
        )
        report = dataset.report
        logger.info(
            "dataset: %d files used, %d rejected, %d chunks, %.1f min",
            len(report.files_used),
            len(report.files_rejected),
            report.chunks,
            report.minutes,
        )
        for rejected in report.files_rejected:
            logger.warning("skipped %s: %s", rejected.path, rejected.reason)
    chunks = dataset.chunks

    if inputs.drop_vocals:
        with times.stage("vocals"):
            chunks, report.vocal_removal = vocals.remove_vocals(
                chunks, vocal_settings, workdir / "vocals", cache_dir=default_cache_dir() / "vocals"
            )
    else:
        report.vocal_removal = {"applied": False, "reason": "drop_vocals=false"}

    labels: dict[str, Labels] = {}
    if inputs.auto_labeling:
        with times.stage("labels"):
            result = labeling.run(chunks, label_settings, workdir / "labels")
            labels, report.labeling = result.labels, result.report
    else:
        report.labeling = {"applied": False, "reason": "auto_labeling=false"}

    with times.stage("manifest"):
        infos = {c.chunk_id: chunk_info(c, labels, label_overrides, inputs) for c in chunks}
        manifest = write_manifest(chunks, infos, workdir / "manifest", inputs.seed)
        logger.info(
            "manifest: %d train, %d valid (%s)",
            manifest.train,
            manifest.valid,
            manifest.split_note,
        )

    plan = TrainPlan(
        inputs=inputs,
        variant=variant,
        base_model_dir=base_dir,
        egs_dir=manifest.egs_dir,
        batch_size=batch_size,
        world_size=resources.world_size,
        device=resources.device,
        valid_examples=manifest.valid,
        num_workers=data_workers(resources.device, resources.world_size),
    )
    overrides = build_overrides(plan)
    with times.stage("train"):
        xp_dir = run_training(
            overrides,
            resources,
            workdir / "train" / "dora",
            output_dir / "training.log",
            on_line=_forward_training_line,
        )

    if not resources.writes_checkpoints:
        logger.info(
            "node %d of %d finished its share of the training; node 0 writes %s",
            resources.node_rank,
            resources.nnodes,
            TAR_NAME,
        )
        return JobResult(tar_path=None, metadata={"node_rank": resources.node_rank}, times=times)

    with times.stage("export"):
        metadata = {
            "format": 1,
            "inputs": inputs.to_dict(),
            "model_version": variant.name,
            "base_model": {"name": variant.name, "hf_repo": variant.hf_repo},
            "sample_rate": variant.sample_rate,
            "channels": variant.channels,
            "dataset": report.to_dict(),
            "split": {
                "train": manifest.train,
                "valid": manifest.valid,
                "note": manifest.split_note,
            },
            "vocabulary": build_vocabulary(infos.values()),
            "training": {
                "batch_size": batch_size,
                "world_size": resources.world_size,
                "nodes": resources.nnodes,
                "launcher": "torchrun" if resources.nnodes > 1 else resources.launcher,
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


def chunk_info(
    chunk: Chunk,
    labels: dict[str, Labels],
    overrides: dict[str, dict[str, Any]],
    inputs: TrainInputs,
) -> dict[str, Any]:
    """MusicInfo fields of one chunk: automatic labels, reviewed overrides, descriptions."""
    from labeling import review
    from labeling.describe import music_info

    chunk_labels = labels.get(chunk.chunk_id)
    if overrides:
        chunk_labels = review.apply_overrides(chunk_labels, chunk.source, chunk.chunk_id, overrides)
    return music_info(chunk, chunk_labels, inputs.one_same_description)


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
