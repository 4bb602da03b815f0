"""AudioCraft's MusicGen solver with gradient accumulation, per-update losses and compile.

`musicgen_ft_micro_batch=M` (training/batching.py) splits each process's batch into
micro-batches of at most M samples (sizes differ by at most one). Per optimizer step:

1. the conditioning attributes of the whole batch are drawn once (classifier-free guidance and
   attribute dropout, tokenization), exactly as AudioCraft does, and the conditions computed;
2. each micro-batch is encoded by the compression model, run through the LM and backpropagated
   with its share of the batch cross-entropy (training/accumulation.py), without any
   gradient all-reduce;
3. the condition gradients go back through the conditioner, gradients (and buffers) are
   averaged over the processes once (flashy's `sync_model`, what `eager_sync_model` does per
   backward), and grad-norm clipping, the optimizer, the LR schedule (which therefore counts
   optimizer steps) and the grad scaler step once.

The metrics are the unaccumulated run's (lr, ce, ppl, per-codebook ce/ppl, grad_norm,
grad_scale). A per-process batch that fits one micro-batch runs AudioCraft's own `run_step`.

With `musicgen_ft_token_cache=DIR` the codes of the manifest chunks are encoded once, before
the first step, into the token cache under DIR (training/token_cache.py), and every batch whose
segments are all cached trains from them: the compression model no longer runs per step. The
first such batch is also encoded on the fly and compared with the cache before it is trusted.
Every optimizer step also appends `{"epoch", "step", "ce", "lr", "micro_batches", "grad_norm"}`
to `train_steps.jsonl` in the experiment folder (rank 0; `ce` averaged over processes,
`grad_norm` of the synchronised gradients before clipping). A resumed run appends to it.
"""

from __future__ import annotations

import itertools
import json
import math
import typing as tp
from pathlib import Path

import flashy
import torch
from audiocraft.solvers.musicgen import MusicGenSolver

from training import lora
from training.accumulation import (
    backward_conditions,
    condition_slice,
    shared_cross_entropy,
    valid_counts,
)
from training.batching import micro_sizes
from training.token_cache import (
    MIN_AGREEMENT,
    Segment,
    TokenCache,
    agreement,
    manifest_paths,
    model_fingerprint,
)

STEPS_FILE = "train_steps.jsonl"
# A held-out loss counts as better only when it is this much below the best one so far.
MIN_IMPROVEMENT = 1e-4
Batch = tuple[torch.Tensor, list[tp.Any]]


def stale_epochs(valid_ce: list[float], min_delta: float = MIN_IMPROVEMENT) -> int:
    """Epochs since the held-out loss last improved on its best by more than `min_delta`."""
    best, since = math.inf, 0
    for ce in valid_ce:
        if ce < best - min_delta:
            best, since = ce, 0
        else:
            since += 1
    return since


class FineTuneSolver(MusicGenSolver):  # type: ignore[misc]  # AudioCraft is untyped
    """MusicGenSolver whose optimizer step may span several micro-batches."""

    def __init__(self, cfg: tp.Any) -> None:
        super().__init__(cfg)
        self.micro_batch = int(cfg.get("musicgen_ft_micro_batch") or 0)
        per_process = int(cfg.dataset.batch_size)
        if 0 < self.micro_batch < per_process:
            if cfg.fsdp.use or self._cached_batch_loader is not None:
                raise RuntimeError("gradient accumulation supports neither FSDP nor batch caches")
            parts = micro_sizes(per_process, self.micro_batch)
            self.logger.info(
                "gradient accumulation: %d samples per process in %d micro-batches of at most "
                "%d, one optimizer step (gradients synchronised once) per batch",
                per_process,
                len(parts),
                self.micro_batch,
            )
        self.token_cache: TokenCache | None = None
        self._cache_checked = False
        self._pending_codes: torch.Tensor | None = None
        self._encode = self.compression_model.encode
        # AudioCraft's own step calls `compression_model.encode(audio)`: hand it the batch's
        # cached codes instead when there are some (set by `run_step` just before).
        self.compression_model.encode = self._encode_or_cached
        cache_dir = cfg.get("musicgen_ft_token_cache")
        if cache_dir:
            self._prepare_token_cache(Path(str(cache_dir)))

    def _prepare_token_cache(self, root: Path) -> None:
        cfg = self.cfg
        segment = Segment(
            float(cfg.dataset.segment_duration), int(cfg.sample_rate), int(cfg.channels)
        )
        cache = TokenCache(root, model_fingerprint(self.compression_model), segment)
        paths = manifest_paths(Path(cfg.datasource.train), Path(cfg.datasource.valid))
        stats = cache.prepare(
            paths,
            lambda audio: self._encode(audio.to(self.device))[0],
            rank=flashy.distrib.rank(),
            world=flashy.distrib.world_size(),
        )
        flashy.distrib.barrier()
        loaded = cache.load(paths)
        self.logger.info(
            "token cache: %d chunks, %d encoded now by this process, %d already cached (%s)",
            stats.chunks,
            stats.encoded,
            stats.cached,
            cache.entries.dir,
        )
        if loaded:
            self.token_cache = cache

    def _encode_or_cached(self, audio: torch.Tensor) -> tuple[torch.Tensor, tp.Any]:
        pending, self._pending_codes = self._pending_codes, None
        if pending is not None and pending.shape[0] == audio.shape[0]:
            return pending, None
        return self._encode(audio)

    def _cached_codes(self, audio: torch.Tensor, infos: list[tp.Any]) -> torch.Tensor | None:
        """The batch's codes from the token cache, or None (not all cached, or no cache)."""
        if self.token_cache is None:
            return None
        codes = self.token_cache.lookup(infos)
        if codes is None:
            return None
        codes = codes.to(self.device)
        if not self._cache_checked:
            self._cache_checked = True
            with torch.no_grad():
                fresh, _ = self._encode(audio.to(self.device))
            share = agreement(codes, fresh)
            if share < MIN_AGREEMENT:
                self.logger.warning(
                    "token cache: only %.4f of the first batch's cached codes equal on-the-fly "
                    "encoding; encoding every batch instead",
                    share,
                )
                self.token_cache = None
                return fresh
            self.logger.info(
                "token cache: training from cached codes (the first batch's equal on-the-fly "
                "encoding: %.4f of %d codes)",
                share,
                fresh.numel(),
            )
        return codes

    def build_model(self) -> None:
        super().build_model()
        rank = int(self.cfg.get("musicgen_ft_lora_rank") or 0)
        if rank > 0:
            if self.cfg.fsdp.use:
                raise RuntimeError("LoRA does not support FSDP")
            from audiocraft.solvers import builders

            adapters = lora.apply_lora(self.model, rank)
            params = lora.trainable(self.model)
            # The optimizer and its schedule see the adapters only (the rest is frozen).
            self.optimizer = builders.get_optimizer(params, self.cfg.optim)
            self.lr_scheduler = builders.get_lr_scheduler(
                self.optimizer, self.cfg.schedule, self.total_updates
            )
            # The best state was snapshotted under the plain names: take it again.
            self.best_state.update("model", self._get_state_source("model"))
            self.logger.info(
                "LoRA rank %d: %d adapted weight matrices, %d trained parameters of %d",
                rank,
                adapters,
                sum(p.numel() for p in params),
                sum(p.numel() for p in self.model.parameters()),
            )
        if self.cfg.get("musicgen_ft_compile", False):
            self.logger.info("compiling the LM's transformer with torch.compile")
            self.model.transformer.compile()  # in place: state_dict keys unchanged

    def should_stop_training(self) -> bool:
        """AudioCraft's rule (all epochs done), or early stopping on the held-out loss:
        `musicgen_ft_early_stopping=P` stops after P epochs without improvement."""
        if super().should_stop_training():
            return True
        patience = int(self.cfg.get("musicgen_ft_early_stopping") or 0)
        if patience <= 0:
            return False
        valid = [float(h["valid"]["ce"]) for h in self.history if "ce" in h.get("valid", {})]
        if valid and stale_epochs(valid) >= patience:
            best = min(valid)
            self.logger.info(
                "early stopping after epoch %d: the held-out ce has not improved for %d "
                "epoch(s) (best %.4f, epoch %d)",
                len(self.history),
                patience,
                best,
                valid.index(best) + 1,
            )
            return True
        return False

    def load_from_pretrained(self, name: str) -> dict[str, tp.Any]:
        """The base LM's weights, under the adapted LM's names when LoRA is on."""
        state: dict[str, tp.Any] = super().load_from_pretrained(name)
        if int(self.cfg.get("musicgen_ft_lora_rank") or 0) > 0:
            plain = state["best_state"]["model"]
            state["best_state"]["model"] = lora.to_lora_state(plain, self.model)
        return state

    def run_step(self, idx: int, batch: Batch, metrics: dict[str, tp.Any]) -> dict[str, tp.Any]:
        size = len(batch[-1])
        sizes = micro_sizes(size, self.micro_batch) if self.micro_batch > 0 else [size]
        if len(sizes) == 1:
            self._pending_codes = self._cached_codes(*batch)
            metrics = super().run_step(idx, batch, metrics)
        else:
            metrics = self._accumulated_step(batch, sizes, metrics)
        if self.is_training:
            self._record_update(idx, metrics, len(sizes))
        return metrics

    def _micro_tokens(self, audio: torch.Tensor, infos: list[tp.Any]) -> tuple[torch.Tensor, ...]:
        """Tokens and padding mask of one micro-batch (AudioCraft's own rule, per sample)."""
        cached = self._cached_codes(audio, infos)
        if cached is not None:
            tokens, scale = cached, None
        else:
            with torch.no_grad():
                tokens, scale = self._encode(audio.to(self.device))
        assert scale is None, "Scaled compression model not supported with LM."
        padding = torch.ones_like(tokens, dtype=torch.bool)
        if self.cfg.tokens.padding_with_special_token:
            tokens = tokens.clone()
            rate = self.compression_model.frame_rate
            for i, info in enumerate(infos):
                valid = math.floor(float(info.n_frames) / info.sample_rate * rate)
                tokens[i, :, valid:] = self.model.special_token_id
                padding[i, :, valid:] = 0
        return tokens, padding

    def _accumulated_step(
        self, batch: Batch, sizes: list[int], metrics: dict[str, tp.Any]
    ) -> dict[str, tp.Any]:
        audio, infos = batch
        training = self.is_training
        bounds = list(itertools.pairwise(itertools.accumulate(sizes, initial=0)))
        attributes = [info.to_condition_attributes() for info in infos]
        attributes = self.model.cfg_dropout(attributes)
        attributes = self.model.att_dropout(attributes)
        tokenized = self.model.condition_provider.tokenize(attributes)
        micro = [self._micro_tokens(audio[a:b], infos[a:b]) for a, b in bounds]
        with torch.set_grad_enabled(training), self.autocast:
            conditions = self.model.condition_provider(tokenized)
        self.deadlock_detect.update("tokens_and_conditions")
        if training:
            metrics["lr"] = self.optimizer.param_groups[0]["lr"]

        counts: torch.Tensor | None = None
        ce_total = torch.zeros([], device=self.device)
        per_codebook: list[torch.Tensor] = []
        parts = []
        for (a, b), (tokens, padding) in zip(bounds, micro, strict=True):
            with torch.set_grad_enabled(training):
                part = condition_slice(conditions, a, b)
                with self.autocast:
                    output = self.model.compute_predictions(tokens, [], part)
                    if counts is None:  # the pattern's mask is the same for every sample
                        counts = valid_counts([p for _, p in micro], output.mask[0])
                    mask = padding & output.mask
                    ce, ce_q = shared_cross_entropy(output.logits, tokens, mask, counts)
                if training:
                    loss = ce if self.scaler is None else self.scaler.scale(ce)
                    loss.backward()
                    del loss
            parts.append(part)
            ce_total = ce_total + ce.detach()
            if per_codebook:
                ce_q = [x + y for x, y in zip(per_codebook, ce_q, strict=True)]
            per_codebook = ce_q
            del output, mask, ce
        self.deadlock_detect.update("loss")

        if training:
            backward_conditions(conditions, parts)
            flashy.distrib.sync_model(self.model)  # once per optimizer step
            self.deadlock_detect.update("backward")
            self._optimizer_step(metrics)
            if not ce_total.isfinite().all():
                raise RuntimeError("Model probably diverged.")

        metrics["ce"] = ce_total
        metrics["ppl"] = torch.exp(ce_total)
        for k, ce_q_k in enumerate(per_codebook):
            metrics[f"ce_q{k + 1}"] = ce_q_k
            metrics[f"ppl_q{k + 1}"] = torch.exp(ce_q_k)
        return metrics

    def _optimizer_step(self, metrics: dict[str, tp.Any]) -> None:
        """AudioCraft's step after the backward: unscale, clip, step, schedule, zero."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.optim.max_norm:
            metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), self.cfg.optim.max_norm
            )
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        if self.lr_scheduler:
            self.lr_scheduler.step()
        self.optimizer.zero_grad()
        self.deadlock_detect.update("optim")
        if self.scaler is not None:
            metrics["grad_scale"] = self.scaler.get_scale()

    def _record_update(self, idx: int, metrics: dict[str, tp.Any], micro_batches: int) -> None:
        """One line per optimizer step in train_steps.jsonl (every rank takes part)."""
        ce = flashy.distrib.average_metrics({"ce": float(metrics["ce"])})["ce"]
        if not flashy.distrib.is_rank_zero():
            return
        line = {
            "epoch": self.epoch,
            "step": idx + 1,
            "ce": ce,
            "lr": float(metrics["lr"]),
            "micro_batches": micro_batches,
        }
        if "grad_norm" in metrics:  # computed after the gradients were synchronised
            line["grad_norm"] = float(metrics["grad_norm"])
        with (self.folder / STEPS_FILE).open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
