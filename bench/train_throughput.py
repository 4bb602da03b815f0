"""LM training throughput of a MusicGen fine-tune: step time, tokens/s, MFU, peak memory.

Builds AudioCraft's LM (`audiocraft.models.builders.get_lm_model`) at a variant's shape from
the variant table (musicgen_ft/variants.py: `small`, `medium`, ...), random init, with the real
codebooks and vocabulary (4 x 2048, delay pattern), on 30 s segments (1500 frames at 50 Hz),
and times the training step the fine-tune runs (training/solver.py) for each configuration of:

- precision: bf16 or fp16 autocast (fp16 with a GradScaler), as training/precision.py chooses
  them; float32 on CPU;
- token cache: `cache` feeds precomputed codes (what a token cache gives the LM); `encode`
  encodes each micro-batch of 30 s audio with an EnCodec of the released shape every step (the
  solver's way without a cache; fp32, no gradient, as AudioCraft does);
- accumulation: `off` computes the global batch in one micro-batch; `on` in two micro-batches
  of half the size (the same global batch, one optimizer step), through the same loss-share
  helpers the solver uses (training/accumulation.py).

Text conditioning: precomputed random condition tensors of the T5-base width (768, 20 tokens),
projected by the conditioner's output projection and cross-attended by every layer; the frozen
T5 encoder's own forward (no gradient, ~20 tokens) is not timed. The optimizer is the product's
default, D-Adapt Adam (`--optimizer adamw` for fused AdamW).

Figures per configuration (one JSON object each, `--out FILE`; a table is printed):

- `step_s`: median wall time of one optimizer step over `--steps` steps after `--warmup`
  (device synchronised before each clock read); `per_sample_s` = step_s / global batch.
- `tokens_per_s`: audio frames x codebooks per second = global batch x 1500 x 4 / step_s (the
  codebook tokens the LM learns from, not the pattern's sequence steps).
- `mfu`: model FLOP/s over the GPU's dense 16-bit peak. Model FLOPs of one step, per sequence
  of S pattern steps (S = frames + 1 with the delay pattern; B sequences):

      6 x N_mm x S                    dense matmuls, forward (2) + backward (4)
    + 6 x L x d x S^2                 causal self-attention: QK^T and AV, 4·S²·d forward
                                      over the full matrix, half of it causal, x3 for backward
    + 12 x L x d x S x C              cross-attention over C condition tokens (not causal)
    + 6 x L x 2 x d^2 x C             the cross-attention's key/value projections

  with N_mm = L x (4 d^2 self-attention + 2 d^2 cross-attention query/output + 2 h d^2
  feed-forward) + K x card x d (the output heads); embeddings are lookups and count 0. EnCodec's
  encode (the `encode` configurations) and the optimizer are not model FLOPs: they lower MFU.
- `peak`: dense bf16/fp16 tensor-core peak of the GPU (PEAK_TFLOPS below, datasheet figures
  without sparsity): H100 SXM and H200 989 TFLOP/s, H100 NVL 835, H100 PCIe 756, A100 312,
  L40S 362, A10G 70; an unknown GPU gets no MFU. `--matmul` also measures an 8192^3 bf16
  matmul (`matmul_tflops`) and reports `mfu_measured` against it.
- `peak_mem_gib`: torch.cuda.max_memory_allocated over the configuration (reset before it);
  on CPU the process's peak RSS so far (ru_maxrss: monotonic over the run).

`--tiny` runs a tiny shape on CPU (dim 64, 2 layers, card 64, 3 s at the debug model's 25 Hz,
global batch 8, one torch thread; 3 rounds of 1 + 6 steps per configuration, the accumulation
settings alternating) in well under a minute: what CI prints (`make bench-train-tiny`), not
asserted.
`--rounds N` alternates accumulation off/on N times and reports the median over all steps.
`--fit medium` checks that a variant's batch (`--batch`) runs at the micro-batch the memory model
(training/batching.py) plans for a GPU of `--fit-gib` GiB (default 79.65: an "80 GB" H100 as
torch reports it), with the process capped at that memory
(torch.cuda.set_per_process_memory_fraction), and reports its peak.

    .venv/bin/python bench/train_throughput.py --tiny --out /tmp/tiny.json
    python bench/train_throughput.py --shapes small --precisions bf16,fp16 --out small.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GIB = 1024**3
SEGMENT_SECONDS = 30.0
TEXT_TOKENS = 20
TEXT_DIM = 768  # T5-base
H100_80GB_GIB = 79.65  # what torch reports for an "80 GB" H100 SXM (81,559 MiB)
# Dense (no sparsity) bf16/fp16 tensor-core peak per GPU, TFLOP/s, by vendor datasheet; matched
# against torch.cuda.get_device_name() in this order (first match wins).
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("H800", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 70.0),
    ("L4", 121.0),
)
TINY_SCALE = "debug"  # dim 64, 2 layers, 4 heads (config/model/lm/model_scale/debug.yaml)
TINY_CARD = 64


@dataclass
class Shape:
    """The LM and data shape one configuration runs."""

    name: str
    dim: int
    layers: int
    heads: int
    n_q: int
    card: int
    hidden_scale: int
    frames: int  # audio frames of one segment
    frame_rate: float
    sample_rate: int
    params: int = 0
    seq_steps: int = 0  # pattern sequence steps S

    def matmul_params(self) -> int:
        per_layer = (4 + 2 + 2 * self.hidden_scale) * self.dim**2
        return self.layers * per_layer + self.n_q * self.card * self.dim

    def step_flops(self, batch: int) -> float:
        """Model FLOPs of one optimizer step over `batch` sequences (formula in the docstring)."""
        d, L, S, C = self.dim, self.layers, self.seq_steps, TEXT_TOKENS
        per_seq = 6 * self.matmul_params() * S
        per_seq += 6 * L * d * S * S  # causal self-attention
        per_seq += 12 * L * d * S * C + 6 * L * 2 * d * d * C  # cross-attention
        return float(batch * per_seq)


@dataclass
class Result:
    shape: str
    precision: str
    tokens: str  # "cache" or "encode"
    accumulation: str  # "off" or "on"
    global_batch: int
    micro_batch: int
    micro_batches: int
    device: str
    ok: bool = True
    error: str | None = None
    steps: int = 0
    step_s: float | None = None
    step_s_all: list[float] = field(default_factory=list)
    per_sample_s: float | None = None
    tokens_per_s: float | None = None
    tflops: float | None = None
    mfu: float | None = None
    mfu_measured: float | None = None
    peak_tflops: float | None = None
    peak_mem_gib: float | None = None
    memory_cap_gib: float | None = None
    model_estimate_gib: float | None = None
    params: int = 0
    seq_steps: int = 0
    frames: int = 0
    step_flops: float = 0.0
    flop_formula: str = (
        "B*(6*N_mm*S + 6*L*d*S^2 + 12*L*d*S*C + 12*L*d^2*C), "
        "N_mm = L*(6+2h)*d^2 + K*card*d, S = pattern steps, C = 20 text tokens"
    )
    tokens_formula: str = "global_batch * frames * n_q / step_s"


def peak_for(device_name: str) -> tuple[float | None, str]:
    for key, tflops in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops, key
    return None, "unknown"


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


# --- models ----------------------------------------------------------------------------------


def lm_overrides(
    variant_name: str, device: str, tiny: bool, tiny_shape: tuple[int, int] | None = None
) -> list[str]:
    from musicgen_ft.variants import get_variant

    variant = get_variant(variant_name)
    base = [
        f"solver={variant.solver}",
        f"device={device}",
        "dtype=float32",
        "dset=audio/musicgen_ft",
        f"channels={variant.channels}",
        *variant.lm_overrides,
        # The conditioner itself never runs (precomputed condition tensors); a LUT of T5's
        # width keeps the build offline with the same output projection and cross-attention.
        "conditioners.description.model=lut",
        "+conditioners.description.lut.n_bins=256",
        f"+conditioners.description.lut.dim={TEXT_DIM}",
        "+conditioners.description.lut.tokenizer=noop",
        "transformer_lm.memory_efficient=true",  # training/precision.py: torch SDPA
    ]
    tiny_lm = [f"model/lm/model_scale={TINY_SCALE}", f"transformer_lm.card={TINY_CARD}"]
    if tiny_shape is not None:  # a larger CPU shape: (dim, layers)
        tiny_lm += [
            f"transformer_lm.dim={tiny_shape[0]}",
            f"transformer_lm.num_layers={tiny_shape[1]}",
        ]
    return [*base, *tiny_lm] if tiny else base


def build_lm(
    variant_name: str, device: str, tiny: bool, tiny_shape: tuple[int, int] | None = None
) -> Any:
    from audiocraft.models import builders
    from audiocraft.modules.transformer import set_efficient_attention_backend

    from training.hydra_config import compose_config

    set_efficient_attention_backend("torch")
    cfg = compose_config(lm_overrides(variant_name, device, tiny, tiny_shape))
    lm = builders.get_lm_model(cfg)
    lm.train()
    return lm


def build_compression(device: str, tiny: bool, card: int) -> Any:
    """EnCodec of the released 32 kHz shape (random init), or the debug model's for --tiny."""
    from audiocraft.models import builders

    from training.debug_model import COMPRESSION_OVERRIDES
    from training.hydra_config import compose_config

    if tiny:
        overrides = [*COMPRESSION_OVERRIDES, f"rvq.bins={card}"]
    else:
        overrides = [
            "solver=compression/encodec_musicgen_32khz",
            "device=cpu",
            f"rvq.bins={card}",
            "rvq.kmeans_init=false",
        ]
    cfg = compose_config(overrides)
    model = builders.get_compression_model(cfg).to(device)
    model.eval()
    return model


def lm_shape(lm: Any, variant_name: str, compression: Any, tiny: bool, seconds: float) -> Shape:
    from musicgen_ft.variants import get_variant

    variant = get_variant(variant_name)
    transformer = lm.transformer
    layer = transformer.layers[0]
    dim = lm.dim
    hidden = layer.linear1.out_features // dim
    frame_rate = float(compression.frame_rate)
    frames = round(seconds * frame_rate)
    pattern = lm.pattern_provider.get_pattern(frames)
    shape = Shape(
        name=("tiny-" if tiny else "") + variant_name,
        dim=dim,
        layers=len(transformer.layers),
        heads=layer.self_attn.num_heads,
        n_q=lm.num_codebooks,
        card=lm.card,
        hidden_scale=hidden,
        frames=frames,
        frame_rate=frame_rate,
        sample_rate=int(compression.sample_rate),
        params=sum(p.numel() for p in lm.parameters()),
        seq_steps=_sequence_steps(lm, pattern, frames),
    )
    assert shape.n_q == variant.n_q or tiny
    return shape


def _sequence_steps(lm: Any, pattern: Any, frames: int) -> int:
    import torch

    codes = torch.zeros(1, lm.num_codebooks, frames, dtype=torch.long)
    sequence, _, _ = pattern.build_pattern_sequence(
        codes, lm.special_token_id, keep_only_valid_steps=True
    )
    return int(sequence.shape[-1])


def make_optimizer(lm: Any, name: str, device: str) -> Any:
    import torch

    if name == "adamw":
        fused = device == "cuda"
        return torch.optim.AdamW(lm.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=fused)
    from audiocraft.optim import DAdaptAdam

    return DAdaptAdam(lm.parameters(), lr=1.0, betas=(0.9, 0.95), weight_decay=0.1)


# --- one configuration -----------------------------------------------------------------------


def run_config(
    lm: Any,
    compression: Any | None,
    shape: Shape,
    *,
    precision: str,
    global_batch: int,
    micro_batch: int,
    steps: int,
    warmup: int,
    device: str,
    optimizer: str,
    peak: float | None,
    measured: float | None,
    memory_cap_gib: float | None = None,
) -> Result:
    import torch

    from training.accumulation import shared_cross_entropy, valid_counts
    from training.batching import micro_sizes

    sizes = micro_sizes(global_batch, micro_batch)
    result = Result(
        shape=shape.name,
        precision=precision,
        tokens="cache" if compression is None else "encode",
        accumulation="on" if len(sizes) > 1 else "off",
        global_batch=global_batch,
        micro_batch=max(sizes),
        micro_batches=len(sizes),
        device=device,
        params=shape.params,
        seq_steps=shape.seq_steps,
        frames=shape.frames,
        step_flops=shape.step_flops(global_batch),
        peak_tflops=peak,
        memory_cap_gib=memory_cap_gib,
    )
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]
    autocast = torch.autocast(device, dtype=dtype) if dtype is not None else _null()
    scaler = torch.amp.GradScaler(device) if precision == "fp16" else None
    opt = make_optimizer(lm, optimizer, device)
    gen = torch.Generator().manual_seed(0)
    segment = int(shape.frames * shape.sample_rate / shape.frame_rate)
    pin = device == "cuda"
    if compression is None:
        host = torch.randint(0, shape.card, (global_batch, shape.n_q, shape.frames), generator=gen)
    else:
        host = 0.1 * torch.randn(global_batch, 1, segment, generator=gen)
    if pin:
        host = host.pin_memory()
    cond = 0.1 * torch.randn(global_batch, TEXT_TOKENS, TEXT_DIM, generator=gen).to(device)
    cond_mask = torch.ones(global_batch, TEXT_TOKENS, dtype=torch.long, device=device)
    proj = lm.condition_provider.conditioners["description"].output_proj
    bounds = [(sum(sizes[:i]), sum(sizes[: i + 1])) for i in range(len(sizes))]

    def step() -> None:
        batch = host.to(device, non_blocking=pin)
        if compression is None:
            micro = [batch[a:b] for a, b in bounds]
        else:  # per micro-batch, as the solver encodes them (training/solver.py)
            with torch.no_grad():
                micro = [compression.encode(batch[a:b])[0] for a, b in bounds]
        with autocast:
            conditions = proj(cond)  # the conditioner's trainable projection, once per batch
        counts = None
        for (a, b), codes in zip(bounds, micro, strict=True):
            with autocast:
                out = lm.compute_predictions(
                    codes, [], {"description": (conditions[a:b], cond_mask[a:b])}
                )
                if counts is None:  # N_k of the whole batch (no padding here)
                    ones = [torch.ones_like(c, dtype=torch.bool) for c in micro]
                    counts = valid_counts(ones, out.mask[0])
                ce, _ = shared_cross_entropy(out.logits, codes, out.mask, counts)
            loss = ce if scaler is None else scaler.scale(ce)
            retain = (a, b) != bounds[-1]
            loss.backward(retain_graph=retain)  # the projection's graph is shared
            del out, ce, loss
        if scaler is None:
            torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
            opt.step()
        else:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
        opt.zero_grad(set_to_none=True)

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times: list[float] = []
    try:
        for i in range(warmup + steps):
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    except torch.OutOfMemoryError as exc:
        result.ok, result.error = False, f"out of memory: {str(exc).splitlines()[0]}"
    finally:
        opt.zero_grad(set_to_none=True)
    if device == "cuda":
        result.peak_mem_gib = torch.cuda.max_memory_allocated() / GIB
        torch.cuda.empty_cache()
    else:
        result.peak_mem_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB
    result.step_s_all = [round(t, 6) for t in times]
    result = _figures(result, shape)
    if measured and result.tflops:
        result.mfu_measured = result.tflops / measured
    return result


def _figures(result: Result, shape: Shape) -> Result:
    """Step time (median of `step_s_all`) and what follows from it."""
    times = result.step_s_all
    if not times:
        return result
    med = statistics.median(times)
    result.steps = len(times)
    result.step_s = med
    result.per_sample_s = med / result.global_batch
    result.tokens_per_s = result.global_batch * shape.frames * shape.n_q / med
    result.tflops = result.step_flops / med / 1e12
    if result.peak_tflops:
        result.mfu = result.tflops / result.peak_tflops
    return result


def _merge(first: Result, later: Result, shape: Shape, measured: float | None) -> Result:
    """One result of the same configuration over several rounds: all their steps."""
    if not later.ok:
        return later
    first.step_s_all = first.step_s_all + later.step_s_all
    first.peak_mem_gib = max(first.peak_mem_gib or 0.0, later.peak_mem_gib or 0.0)
    first = _figures(first, shape)
    if measured and first.tflops:
        first.mfu_measured = first.tflops / measured
    return first


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# --- environment -----------------------------------------------------------------------------


def environment(device: str, matmul: bool) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": device,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        import audiocraft

        env["audiocraft"] = audiocraft.__version__
    except ImportError:
        pass
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        name = torch.cuda.get_device_name(0)
        peak, key = peak_for(name)
        env.update(
            gpu=name,
            gpu_memory_gib=props.total_memory / GIB,
            sms=props.multi_processor_count,
            bf16=torch.cuda.is_bf16_supported(),
            peak_tflops=peak,
            peak_source=f"datasheet dense bf16/fp16, matched {key!r}",
        )
        if matmul:
            env["matmul_tflops"] = matmul_tflops()
    return env


def matmul_tflops(n: int = 8192, reps: int = 10) -> float:
    """Measured bf16 matmul rate on random data (the ceiling METHOD.md recommends)."""
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        a @ b
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000 / reps
    del a, b
    return 2 * n**3 / seconds / 1e12


# --- driver ----------------------------------------------------------------------------------


def planned_micro(variant_name: str, batch: int, gib: float, optimizer: str) -> int:
    from musicgen_ft.variants import get_variant
    from training.batching import resolve_batch_plan

    plan = resolve_batch_plan(
        batch,
        1,
        get_variant(variant_name),
        device="cuda",
        optimizer=optimizer,
        device_bytes=int(gib * GIB),
        autocast=True,
        env={},
    )
    return plan.micro_batch


def model_estimate_gib(variant_name: str, micro: int, optimizer: str) -> float:
    from musicgen_ft.variants import get_variant
    from training import memory

    est = memory.estimate(get_variant(variant_name), optimizer, autocast=True)
    return (est.static + micro * est.per_sample) / GIB


def bench_shape(
    variant_name: str,
    args: argparse.Namespace,
    device: str,
    env: dict[str, Any],
    emit: Callable[[Result], None],
) -> None:
    import gc

    import torch

    gc.collect()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    tiny_shape = (args.tiny_dim, args.tiny_layers) if args.tiny_dim else None
    lm = build_lm(variant_name, device, args.tiny, tiny_shape)
    compression = build_compression(device, args.tiny, lm.card) if "encode" in args.tokens else None
    probe = compression if compression is not None else build_compression("cpu", args.tiny, lm.card)
    shape = lm_shape(lm, variant_name, probe, args.tiny, args.seconds)
    print(
        f"# {shape.name}: {shape.params / 1e6:.1f} M params, dim {shape.dim}, {shape.layers} "
        f"layers, {shape.n_q} x {shape.card}, {shape.frames} frames -> {shape.seq_steps} "
        f"steps, built in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    precisions = ["fp32"] if device == "cpu" else args.precisions
    micro_half = max(1, args.batch // 2)
    measured = env.get("matmul_tflops")
    for precision in precisions:
        for tokens in args.tokens:
            done: dict[str, Result] = {}
            # Rounds alternate the accumulation settings, so that drift in the machine's load
            # (a shared CPU) falls on both alike; the figures are over every round's steps.
            for _ in range(args.rounds):
                for acc in args.accumulation:
                    micro = args.batch if acc == "off" else micro_half

                    def one(p: str = precision, t: str = tokens, m: int = micro) -> Result:
                        return run_config(
                            lm,
                            compression if t == "encode" else None,
                            shape,
                            precision=p,
                            global_batch=args.batch,
                            micro_batch=m,
                            steps=args.steps,
                            warmup=args.warmup,
                            device=device,
                            optimizer=args.optimizer,
                            peak=env.get("peak_tflops"),
                            measured=measured,
                        )

                    res = _guarded(one, shape, precision, tokens, args.batch, micro, device)
                    done[acc] = res if acc not in done else _merge(done[acc], res, shape, measured)
            for acc in args.accumulation:
                res = done[acc]
                if not args.tiny:
                    res.model_estimate_gib = model_estimate_gib(
                        variant_name, res.micro_batch, args.optimizer
                    )
                emit(res)


def fit_check(
    variant_name: str,
    args: argparse.Namespace,
    device: str,
    env: dict[str, Any],
    emit: Callable[[Result], None],
) -> None:
    """Run the variant's batch at the micro-batch planned for a `--fit-gib` GPU, capped there."""
    import torch

    if device != "cuda":
        print(f"# fit check of {variant_name} skipped: no GPU")
        return
    import gc

    gc.collect()
    torch.cuda.empty_cache()
    micro = planned_micro(variant_name, args.batch, args.fit_gib, args.optimizer)
    total = torch.cuda.get_device_properties(0).total_memory
    fraction = min(1.0, args.fit_gib * GIB / total)
    torch.cuda.set_per_process_memory_fraction(fraction)
    try:
        torch.manual_seed(0)
        try:
            lm = build_lm(variant_name, device, False)
            probe = build_compression("cpu", False, lm.card)
            shape = lm_shape(lm, variant_name, probe, False, args.seconds)
        except Exception as exc:  # the model itself does not fit: say so in the JSON
            traceback.print_exc()
            failed = Result(
                shape=variant_name, precision="bf16", tokens="cache",
                accumulation="on" if micro < args.batch else "off", global_batch=args.batch,
                micro_batch=micro, micro_batches=math.ceil(args.batch / micro), device=device,
                ok=False, error=f"building the model: {type(exc).__name__}: {exc}"[:500],
                memory_cap_gib=args.fit_gib,
            )  # fmt: skip
            emit(failed)
            return
        print(
            f"# fit: {shape.name} batch {args.batch}, planned micro-batch {micro} for "
            f"{args.fit_gib:.0f} GiB ({shape.params / 1e6:.0f} M params)",
            flush=True,
        )
        res = _guarded(
            lambda: run_config(
                lm,
                None,
                shape,
                precision="bf16",
                global_batch=args.batch,
                micro_batch=micro,
                steps=args.fit_steps,
                warmup=1,
                device=device,
                optimizer=args.optimizer,
                peak=env.get("peak_tflops"),
                measured=env.get("matmul_tflops"),
                memory_cap_gib=args.fit_gib,
            ),
            shape,
            "bf16",
            "cache",
            args.batch,
            micro,
            device,
        )
        res.model_estimate_gib = model_estimate_gib(variant_name, micro, args.optimizer)
        emit(res)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


def _guarded(
    run: Callable[[], Result],
    shape: Shape,
    precision: str,
    tokens: str,
    batch: int,
    micro: int,
    device: str,
) -> Result:
    try:
        return run()
    except Exception as exc:  # one configuration failing must not lose the others
        traceback.print_exc()
        return Result(
            shape=shape.name,
            precision=precision,
            tokens=tokens,
            accumulation="on" if micro < batch else "off",
            global_batch=batch,
            micro_batch=micro,
            micro_batches=math.ceil(batch / micro),
            device=device,
            ok=False,
            error=f"{type(exc).__name__}: {exc}"[:500],
            params=shape.params,
        )


def table(results: list[Result]) -> str:
    head = (
        f"{'shape':<12} {'prec':<5} {'tokens':<6} {'acc':<4} {'B':>3} {'mb':>3} "
        f"{'step s':>8} {'s/sample':>9} {'tok/s':>10} {'TFLOP/s':>8} {'MFU':>6} "
        f"{'mem GiB':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        if not r.ok:
            lines.append(
                f"{r.shape:<12} {r.precision:<5} {r.tokens:<6} {r.accumulation:<4} "
                f"{r.global_batch:>3} {r.micro_batch:>3} FAILED: {r.error}"
            )
            continue
        mfu = f"{100 * r.mfu:5.1f}%" if r.mfu is not None else "   n/a"
        lines.append(
            f"{r.shape:<12} {r.precision:<5} {r.tokens:<6} {r.accumulation:<4} "
            f"{r.global_batch:>3} {r.micro_batch:>3} {r.step_s:>8.4f} {r.per_sample_s:>9.5f} "
            f"{r.tokens_per_s:>10.0f} {r.tflops:>8.3f} {mfu:>6} {r.peak_mem_gib:>8.2f}"
        )
    return "\n".join(lines)


def accumulation_ratios(results: list[Result]) -> list[dict[str, Any]]:
    """Per-sample time with accumulation over without, per (shape, precision, tokens)."""
    out = []
    key = lambda r: (r.shape, r.precision, r.tokens)  # noqa: E731
    for off in (
        r for r in results if r.ok and r.accumulation == "off" and r.memory_cap_gib is None
    ):
        for on in (r for r in results if r.ok and r.accumulation == "on" and key(r) == key(off)):
            assert on.per_sample_s is not None and off.per_sample_s is not None
            out.append(
                {
                    "shape": off.shape,
                    "precision": off.precision,
                    "tokens": off.tokens,
                    "per_sample_ratio_on_over_off": on.per_sample_s / off.per_sample_s,
                }
            )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--tiny", action="store_true", help="tiny shape on CPU (CI)")
    p.add_argument("--tiny-dim", type=int, default=0, help="--tiny with another width (64)")
    p.add_argument("--tiny-layers", type=int, default=2, help="its layers with --tiny-dim")
    p.add_argument("--shapes", default="small", help="variants, comma-separated (small,medium)")
    p.add_argument("--precisions", default="bf16,fp16", help="bf16,fp16 (GPU; CPU is fp32)")
    p.add_argument("--tokens", default="cache,encode", help="cache,encode")
    p.add_argument("--accumulation", default="off,on", help="off,on")
    p.add_argument("--batch", type=int, default=None, help="global batch (16; --tiny 8)")
    p.add_argument("--seconds", type=float, default=None, help="segment (30; --tiny 3)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per round (10; 6)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (3; --tiny 1)")
    p.add_argument("--rounds", type=int, default=None, help="alternations of acc off/on (1; 3)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of torch (--tiny: 1)")
    p.add_argument("--optimizer", default="dadam", choices=("dadam", "adamw"))
    p.add_argument("--fit", default="", help="variants to fit-check at their planned micro-batch")
    p.add_argument(
        "--fit-gib", type=float, default=H100_80GB_GIB, help="GPU memory of the fit check (GiB)"
    )
    p.add_argument("--fit-steps", type=int, default=2)
    p.add_argument("--matmul", action="store_true", help="also measure a bf16 matmul ceiling")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = p.parse_args(argv)
    tiny = args.tiny
    args.batch = args.batch or (8 if tiny else 16)
    args.seconds = args.seconds or (3.0 if tiny else SEGMENT_SECONDS)
    args.steps = args.steps or (6 if tiny else 10)
    args.rounds = args.rounds or (3 if tiny else 1)
    args.warmup = args.warmup if args.warmup is not None else (1 if tiny else 3)
    for name in ("shapes", "precisions", "tokens", "accumulation", "fit"):
        setattr(args, name, [x.strip() for x in getattr(args, name).split(",") if x.strip()])
    if tiny:
        args.shapes = args.shapes[:1] or ["small"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("USER", "bench")
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    threads = args.threads or (1 if args.tiny else 0)
    if threads:  # one thread: steadier on a shared CPU (other jobs' load stalls a thread team)
        torch.set_num_threads(threads)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    start = time.perf_counter()
    env = environment(device, args.matmul)
    results: list[Result] = []
    report: dict[str, Any] = {"environment": env, "args": _jsonable(vars(args)), "results": []}

    def emit(res: Result) -> None:
        results.append(res)
        report["results"] = [asdict(r) for r in results]
        report["accumulation_ratios"] = accumulation_ratios(results)
        report["wall_s"] = time.perf_counter() - start
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1))
        line = table([res]).splitlines()[-1]
        print(line, flush=True)

    for name in args.shapes:
        bench_shape(name, args, device, env, emit)
    for name in args.fit:
        fit_check(name, args, device, env, emit)
    print()
    print(
        f"device: {env.get('gpu', 'cpu')}; peak {env.get('peak_tflops')} TFLOP/s "
        f"({env.get('peak_source', 'CPU: no MFU')}); tokens/s = frames x codebooks / s"
    )
    print(table(results))
    for ratio in report.get("accumulation_ratios", []):
        print(
            f"accumulation on/off per-sample time, {ratio['shape']} {ratio['precision']} "
            f"{ratio['tokens']}: {ratio['per_sample_ratio_on_over_off']:.3f}"
        )
    print(f"wall {time.perf_counter() - start:.1f} s")
    if args.out is not None:
        report["wall_s"] = time.perf_counter() - start
        args.out.write_text(json.dumps(report, indent=1))
    return 0 if all(r.ok for r in results) or not args.tiny else 1


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}


if __name__ == "__main__":
    sys.exit(main())
