"""The one place that orders and times the stages of a fine-tune.

    check → fetch + prepare → vocals → labels → manifest → train → export → samples → quality

Cog's `train()`, the CLI (`train.py`) and the trainings server all call `run_job`; none of them
holds pipeline logic. Every stage writes under its own folder of the job's work dir, which is
kept after a failure so it can be inspected.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicgen_ft.inputs import TrainInputs
from musicgen_ft.types import Labels
from musicgen_ft.variants import get_variant
from training.launch import Topology

logger = logging.getLogger("musicgen_ft")


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


def run_job(
    inputs: TrainInputs,
    output_dir: Path,
    resources: Topology | None = None,
    *,
    keep_work: bool = False,
) -> JobResult:
    """Run a whole fine-tune; write `output_dir/trained_model.tar` and return it.

    A re-run into the same output dir resumes the job from its last checkpoint, or returns the
    finished tar without training again; an output dir that holds another job is refused
    (training/identity.py). After success the work dir is removed unless `keep_work`.

    Raises a FineTuneError subclass with a one-line reason on any user-facing failure.
    """
    from evaluation.curves import write_curves
    from labeling import review
    from labeling import stage as labeling
    from labeling.merge import chunk_info
    from labeling.models import default_models_dir
    from labeling.vocabulary import build_vocabulary
    from musicgen_ft.constants import TAR_NAME
    from musicgen_ft.paths import cache_root
    from musicgen_ft.weights import ensure_fetched, ensure_taggers, ensure_variant_weights
    from preprocessing import vocals
    from preprocessing.audio import PrepSettings
    from preprocessing.fetch import FetchSettings, fetch
    from preprocessing.stage import prepare_dataset
    from training import identity, lora, token_cache
    from training.base_config import architecture_overrides
    from training.batching import resolve_batch_plan
    from training.export import add_results, job_metadata, read_history, read_metadata, write_tar
    from training.launch import (
        data_workers,
        detect_topology,
        forward_training_line,
        run_training,
    )
    from training.manifest import write_manifest
    from training.memory import device_memory
    from training.overrides import TrainPlan, build_overrides, hyperparameter_notes
    from training.precision import choose_precision, device_caps

    variant = get_variant(inputs.model_version)
    resources = resources or detect_topology()
    output_dir.mkdir(parents=True, exist_ok=True)
    workdir = output_dir / "work"
    times = StageTimes()
    vocal_settings = vocals.VocalSettings(
        enabled=inputs.drop_vocals, model=inputs.demucs_model
    ).validate()
    label_settings = labeling.LabelSettings(
        enabled=inputs.auto_labeling, models_dir=default_models_dir()
    )

    # Everything that can be refused is checked before any heavy work.
    with times.stage("check"):
        identity.check_same_inputs(output_dir, inputs)
        precision = choose_precision(device_caps(resources.device), inputs.optimizer)
        batch = resolve_batch_plan(
            inputs.batch_size,
            resources.world_size,
            variant,
            device=resources.device,
            optimizer=inputs.optimizer,
            device_bytes=device_memory(resources.device),
            autocast=precision.autocast is not None,
            lora=inputs.lora_rank > 0,
        )
        batch_size = batch.global_batch
        notes = [*batch.notes, *hyperparameter_notes(inputs)]
        for note in notes:
            logger.warning("%s", note)
        fetch_settings = FetchSettings(allow_private=inputs.allow_private_urls)
        label_overrides = {}
        if inputs.labels_file:
            labels_path = fetch(
                inputs.labels_file, workdir / "labels_file", fetch_settings, field="labels_file"
            )
            label_overrides = review.load_overrides(labels_path)
        base_dir = ensure_variant_weights(variant)
        architecture = tuple(architecture_overrides(base_dir, variant))
        lora.check_rank(inputs.lora_rank, architecture, variant.name)
        if inputs.drop_vocals:
            # A missing htdemucs is fetched when online, as for the base model.
            ensure_fetched(lambda: vocals.check_available(vocal_settings), inputs.demucs_model)
        if inputs.auto_labeling:
            ensure_taggers(label_settings.models_dir)
        logger.info(
            "model_version=%s base=%s device=%s processes=%d batch_size=%d",
            variant.name,
            base_dir,
            resources.device,
            resources.world_size,
            batch_size,
        )
        logger.info("batch plan: %s; precision: %s", batch.describe(), precision.to_dict())

    dataset = prepare_dataset(
        inputs.dataset_path,
        PrepSettings(sample_rate=variant.sample_rate, channels=variant.channels),
        vocal_settings,
        workdir,
        fetch_settings,
        cache_root=cache_root(),
        stage=times.stage,
    )
    report, chunks = dataset.report, dataset.chunks
    logger.info(
        "dataset: %d files used, %d rejected, %d chunks, %.1f min",
        len(report.files_used),
        len(report.files_rejected),
        report.chunks,
        report.minutes,
    )
    for rejected in report.files_rejected:
        logger.warning("skipped %s: %s", rejected.path, rejected.reason)

    labels: dict[str, Labels] = {}
    if inputs.auto_labeling:
        with times.stage("labels"):
            result = labeling.run(chunks, label_settings, workdir / "labels")
            labels, report.labeling = result.labels, result.report
    else:
        report.labeling = {"applied": False, "reason": "auto_labeling=false"}

    with times.stage("manifest"):
        infos = {
            c.chunk_id: chunk_info(c, labels, label_overrides, inputs.one_same_description)
            for c in chunks
        }
        manifest = write_manifest(chunks, infos, workdir / "manifest", inputs.seed)
        logger.info(
            "manifest: %d train, %d valid (%s)",
            manifest.train,
            manifest.valid,
            manifest.split_note,
        )
        job_id = identity.job_identity(inputs, manifest.egs_dir)
        record = identity.check_same_data(output_dir, job_id)
    tar_out = output_dir / TAR_NAME
    if record is not None and record.finished and tar_out.is_file():
        logger.info("this job already finished (job %s); returning %s unchanged", job_id, tar_out)
        _remove_work(workdir, keep_work)
        return JobResult(tar_path=tar_out, metadata=read_metadata(tar_out), times=times)
    identity.JobRecord(identity.result_inputs(inputs), job_id).write(output_dir)

    plan = TrainPlan(
        inputs=inputs,
        variant=variant,
        base_model_dir=base_dir,
        egs_dir=manifest.egs_dir,
        batch_size=batch_size,
        world_size=resources.world_size,
        device=resources.device,
        valid_examples=manifest.valid,
        num_workers=data_workers(resources),
        job_id=job_id,
        architecture=architecture,
        micro_batch=batch.micro_batch,
        precision=precision,
        token_cache=cache_root() if token_cache.enabled() else None,
        checkpointing=batch.checkpointing,
    )
    overrides = build_overrides(plan)
    with times.stage("train"):
        xp_dir = run_training(
            overrides,
            resources,
            workdir / "train" / "dora",
            output_dir / "training.log",
            on_line=forward_training_line,
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
        metadata = job_metadata(
            inputs=inputs.to_dict(),
            variant=variant,
            dataset=report.to_dict(),
            split={"train": manifest.train, "valid": manifest.valid, "note": manifest.split_note},
            vocabulary=build_vocabulary(infos.values()),
            training={
                "batch_size": batch_size,
                "batch_plan": batch.to_dict(),
                "precision": precision.to_dict(),
                "world_size": resources.world_size,
                "nodes": resources.nnodes,
                "launcher": resources.launcher,
                "device": resources.device,
                "total_updates": plan.total_updates,
                "job_id": job_id,
                "overrides": overrides,
                "notes": notes,
            },
            timings=dict(times.seconds),
        )
        results_dir = workdir / "results"
        metadata["history"] = read_history(xp_dir)
        epochs_run = len(metadata["history"])
        metadata["training"]["epochs_run"] = epochs_run
        if inputs.early_stopping and epochs_run < inputs.epochs:
            metadata["training"]["early_stopped"] = {
                "after_epoch": epochs_run,
                "patience": inputs.early_stopping,
            }
            logger.info(
                "early stopping: trained %d of %d epochs (no held-out improvement for %d)",
                epochs_run,
                inputs.epochs,
                inputs.early_stopping,
            )
        metadata["curves"] = write_curves(
            metadata["history"],
            output_dir / "training.log",
            inputs.updates_per_epoch,
            results_dir,
            title=f"{variant.name} fine-tune, job {job_id}",
        )
        curves = {name: results_dir / name for name in metadata["curves"].values()}
        tar_path = write_tar(tar_out, xp_dir, metadata, curves)

    clips: list[str] = []
    tokens: dict[str, dict[str, object]] = {}
    metadata["samples"] = []
    if inputs.sample_prompts:
        with times.stage("samples"):
            metadata["samples"] = _listening_samples(
                inputs, tar_path, manifest.egs_dir, metadata, results_dir, resources.device, tokens
            )
            clips = [s[role] for s in metadata["samples"] for role in ("finetuned", "base")]
    with times.stage("quality"):
        quality_file = _quality_report(
            inputs, manifest.egs_dir, metadata, results_dir, resources.device, tokens
        )
        files = {name: results_dir / name for name in clips}
        files[quality_file.name] = quality_file
        add_results(tar_path, files, metadata)
    identity.JobRecord(identity.result_inputs(inputs), job_id, finished=True).write(output_dir)
    _remove_work(workdir, keep_work)
    metadata["timings"] = dict(times.seconds)
    metadata["peak_memory"] = peak_memory_mb()
    return JobResult(tar_path=tar_path, metadata=metadata, times=times)


def _listening_samples(
    inputs: TrainInputs,
    tar_path: Path,
    egs_dir: Path,
    metadata: dict[str, Any],
    results_dir: Path,
    device: str,
    tokens: dict[str, dict[str, object]],
) -> list[dict[str, object]]:
    """The fine-tune and the base model on the same prompts and seeds (evaluation/samples)."""
    from evaluation import samples

    prompts = samples.choose_prompts(
        samples.descriptions_of(egs_dir / "valid"),
        metadata.get("vocabulary", {}).get("suggested_prompts", []),
        inputs.sample_prompts,
    )
    rendered = samples.render(
        tar_path,
        inputs.model_version,
        prompts,
        duration=inputs.sample_duration,
        seed=inputs.seed,
        out_dir=results_dir / samples.SAMPLES_DIR,
        device=device,
        tokens=tokens,
    )
    logger.info(
        "samples: %d prompts x (fine-tune, base), %.0f s each, in %s/",
        len(rendered),
        inputs.sample_duration,
        samples.SAMPLES_DIR,
    )
    return samples.as_metadata(rendered)


def _quality_report(
    inputs: TrainInputs,
    egs_dir: Path,
    metadata: dict[str, Any],
    results_dir: Path,
    device: str,
    tokens: dict[str, dict[str, object]],
) -> Path:
    """quality.json from the samples, the held-out and training chunks (evaluation/quality),
    in the base model's own compression space; its summary goes to the log and metadata."""
    from evaluation import quality, samples

    if not metadata["samples"]:
        report = quality.report(None, {}, [], [], metadata.get("history", []))
        report["clap"] = {"available": False, "note": "no samples (sample_prompts is 0)"}
        metadata["quality"] = {"file": quality.QUALITY_FILE, **report}
        return quality.write(report, results_dir)
    from inference.loading import load_model

    base = load_model(model_version=inputs.model_version, device=device)
    report = quality.report(
        base.model.compression_model,
        tokens,
        samples.chunk_paths(egs_dir / "valid")[: quality.MAX_HELD_OUT],
        samples.chunk_paths(egs_dir / "train")[: quality.MAX_TRAINING],
        metadata.get("history", []),
    )
    del base
    report["clap"] = _clap_section(metadata["samples"], egs_dir, results_dir, device)
    line = quality.summary(report)
    logger.info("%s", line)
    metadata["quality"] = {"file": quality.QUALITY_FILE, "summary": line, **report}
    return quality.write(report, results_dir)


def _clap_section(
    sample_list: list[dict[str, Any]], egs_dir: Path, results_dir: Path, device: str
) -> dict[str, Any]:
    """The report's CLAP measures when `download-weights clap` fetched the model."""
    from evaluation import clap, quality, samples

    space, why = clap.load_available(device)
    if space is None:
        logger.info("quality: %s", why)
        return {"available": False, "note": why}
    names = [f"{i:02d}" for i in range(len(sample_list))]
    section = quality.clap_report(
        space,
        {
            n: {role: results_dir / str(s[role]) for role in ("finetuned", "base")}
            for n, s in zip(names, sample_list, strict=True)
        },
        {n: str(s["prompt"]) for n, s in zip(names, sample_list, strict=True)},
        samples.chunk_paths(egs_dir / "valid")[: quality.MAX_HELD_OUT],
        samples.chunk_paths(egs_dir / "train"),
    )
    return {"available": True, **section}


def _remove_work(workdir: Path, keep: bool) -> None:
    """A finished job's work dir (chunks, manifests, checkpoints) goes unless asked to keep it."""
    import shutil

    if keep or not workdir.exists():
        return
    shutil.rmtree(workdir, ignore_errors=True)
    logger.info("removed the work dir %s (--keep_work keeps it)", workdir)
