"""The quality report of a fine-tune (`quality.json` in every tar).

Measured in the base model's own EnCodec space, which every job has:
- **Closeness to the user's music**: KAD (kernel audio distance: unbiased MMD² with a Gaussian
  kernel, bandwidth the median pairwise distance) between the latent frames of the generated
  clips and those of the held-out chunks, for the fine-tune and for the base model on the same
  prompts and seeds. Lower is closer; a fine-tune that learned should beat its base.
- **Memorisation**: for each fine-tuned clip, the nearest training chunk in first-codebook
  tokens: the largest share of the clip's tokens that equal the chunk's at one alignment
  (any offset). The base model's clip for the same prompt and seed is the in-run control:
  a clip is flagged when its share is at least 0.15 and at least twice the base clip's.
  (0.15 was set on a development run, one synthetic track overfitted to held-out CE 0.02:
  fine-tune 0.21-0.24, base 0.05-0.06; the test checks a different track and prompt.)
- **Best epoch**: the epoch with the lowest held-out cross-entropy.

When `download-weights clap` fetched LAION's CLAP (evaluation/clap.py), the report adds, in CLAP
embeddings (`clap`):
- the same KAD, over 10 s window embeddings of the clips and of the held-out chunks;
- **text agreement**: the cosine between each clip's embedding and its prompt's, for the
  fine-tune and the base (higher: the clip sounds more like what was asked);
- each clip's **nearest training chunk** by cosine, with the base clip's as the control and, as
  a reference, the median over held-out chunks of their own nearest training chunk (real unseen
  music from the same set). It is reported, not flagged: the warning stays with the token check,
  whose threshold was set on a run; no CLAP run has set one.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

QUALITY_FILE = "quality.json"
MEMORISATION_THRESHOLD = 0.15
CONTROL_RATIO = 2.0
MAX_FRAMES = 2048  # per set, for the kernel distance (subsampled evenly beyond that)
MAX_HELD_OUT = 64  # chunks encoded for the distance
MAX_TRAINING = 512  # chunks searched for memorisation
CLAP_MAX_TRAINING = 128  # chunks embedded with CLAP for the nearest-chunk search


@dataclass(frozen=True)
class Encoded:
    """One clip in the compression model's space."""

    codes: list[list[int]]  # first-codebook token streams (one per channel stream)
    frames: Any  # torch.Tensor [N, D]: continuous latent frames


@dataclass(frozen=True)
class Memorisation:
    clip: str
    nearest_chunk: str | None
    overlap: float  # share of the clip's tokens equal to that chunk's at one alignment
    base_overlap: float  # the same for the base model's clip (same prompt and seed)
    flagged: bool


def encode(compression_model: Any, wav: Any, sample_rate: int) -> Encoded:
    """`wav` [C, T] at `sample_rate` → codes and latent frames of `compression_model`."""
    import torch
    from audiocraft.data.audio_utils import convert_audio

    x = convert_audio(
        wav.float(), sample_rate, compression_model.sample_rate, compression_model.channels
    )
    device = next(compression_model.parameters()).device
    with torch.no_grad():
        codes, _ = compression_model.encode(x[None].to(device))
    return from_tokens(compression_model, codes)


def from_tokens(compression_model: Any, codes: Any) -> Encoded:
    """Tokens [1, K, T] as the LM made them → the same space as `encode`."""
    import torch

    device = next(compression_model.parameters()).device
    with torch.no_grad():
        codes = codes.to(device)
        if hasattr(compression_model, "get_left_right_codes"):  # interleaved stereo
            parts = list(compression_model.get_left_right_codes(codes))
            inner = compression_model.model
        else:
            parts, inner = [codes], compression_model
        frames = torch.cat([inner.decode_latent(p)[0].T.float().cpu() for p in parts])
    return Encoded([p[0, 0].tolist() for p in parts], frames)


def encode_file(compression_model: Any, path: Path) -> Encoded:
    import soundfile as sf
    import torch

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return encode(compression_model, torch.from_numpy(data.T.copy()), int(sr))


def kad(x: Any, y: Any) -> float:
    """Unbiased MMD² between frame sets `x` [N, D] and `y` [M, D] (Gaussian kernel, median
    heuristic bandwidth over both sets)."""
    import torch

    x, y = _subsample(x), _subsample(y)
    both = torch.cat([x, y])
    d2 = torch.cdist(both, both).pow(2)
    positive = d2[d2 > 0]
    bandwidth = float(positive.median()) if positive.numel() else 1.0
    k = torch.exp(-d2 / (2 * bandwidth))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    xx = (kxx.sum() - kxx.diagonal().sum()) / max(n * (n - 1), 1)
    yy = (kyy.sum() - kyy.diagonal().sum()) / max(m * (m - 1), 1)
    return float(xx + yy - 2 * kxy.mean())


def _subsample(frames: Any) -> Any:
    if len(frames) <= MAX_FRAMES:
        return frames
    step = len(frames) / MAX_FRAMES
    return frames[[int(i * step) for i in range(MAX_FRAMES)]]


def aligned_share(clip: list[int], chunk: list[int]) -> float:
    """Largest share of `clip`'s tokens equal to `chunk`'s at one offset (diagonal sums of the
    equality matrix)."""
    import numpy as np

    a, b = np.asarray(clip), np.asarray(chunk)
    if len(a) == 0 or len(b) == 0:
        return 0.0
    equal = a[:, None] == b[None, :]
    i, j = np.nonzero(equal)
    if len(i) == 0:
        return 0.0
    counts = np.bincount(j - i + len(a), minlength=len(a) + len(b))
    return float(counts.max()) / len(a)


def nearest(generated: Encoded, training: dict[str, Encoded]) -> tuple[float, str | None]:
    best: tuple[float, str | None] = (0.0, None)
    for name, chunk in training.items():
        share = max(
            (aligned_share(g, c) for g in generated.codes for c in chunk.codes), default=0.0
        )
        if share > best[0]:
            best = (share, name)
    return best


def memorisation(
    clip: str, generated: Encoded, control: Encoded | None, training: dict[str, Encoded]
) -> Memorisation:
    """The clip's nearest training chunk, judged against the base model's clip (`control`)."""
    share, name = nearest(generated, training)
    base_share = nearest(control, training)[0] if control is not None else 0.0
    flagged = share >= MEMORISATION_THRESHOLD and share >= CONTROL_RATIO * base_share
    return Memorisation(clip, name, round(share, 4), round(base_share, 4), flagged)


def best_epoch(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The epoch with the lowest held-out cross-entropy (1-based), from the solver history."""
    scored = [
        (float(entry["valid"]["ce"]), n + 1)
        for n, entry in enumerate(history)
        if isinstance(entry.get("valid"), dict) and "ce" in entry["valid"]
    ]
    if not scored:
        return None
    ce, epoch = min(scored)
    return {"epoch": epoch, "valid_ce": round(ce, 4), "of": len(history)}


def report(
    compression_model: Any,
    clips: dict[str, dict[str, Any]],
    held_out: list[Path],
    training: list[Path],
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    """The report. `clips`: per sample name, {"finetuned": tokens, "base": tokens} as the LMs
    generated them ([1, K, T])."""
    import torch

    held = [encode_file(compression_model, p) for p in held_out]
    train = {p.name: encode_file(compression_model, p) for p in training}
    generated = {
        name: {role: from_tokens(compression_model, codes) for role, codes in pair.items()}
        for name, pair in clips.items()
    }
    distance: dict[str, Any] = {"space": "base EnCodec latent frames", "metric": "KAD"}
    if held and generated:
        target = torch.cat([h.frames for h in held])
        for role in ("finetuned", "base"):
            frames = torch.cat([g[role].frames for g in generated.values()])
            distance[role] = round(kad(frames, target), 6)
        distance["finetuned_closer"] = distance["finetuned"] < distance["base"]
    else:
        distance["note"] = "no held-out chunk or no sample: nothing to compare"
    checks = [
        memorisation(name, g["finetuned"], g.get("base"), train) for name, g in generated.items()
    ]
    return {
        "distance_to_held_out": distance,
        "held_out_chunks": len(held),
        "memorisation": {
            "unit": "first-codebook tokens equal at one alignment",
            "threshold": MEMORISATION_THRESHOLD,
            "control_ratio": CONTROL_RATIO,
            "clips": [asdict(c) for c in checks],
            "flagged": any(c.flagged for c in checks),
        },
        "best_epoch": best_epoch(history),
    }


def clap_report(
    space: Any,
    clips: dict[str, dict[str, Path]],
    prompts: dict[str, str],
    held_out: list[Path],
    training: list[Path],
) -> dict[str, Any]:
    """The `clap` section. `clips`: per sample name, {"finetuned": wav, "base": wav};
    `prompts`: per sample name, the text both were generated from."""
    import torch

    from evaluation.clap import clip_embedding

    held = [space.audio_file(p) for p in held_out]
    train = {p.name: clip_embedding(space.audio_file(p)) for p in training[:CLAP_MAX_TRAINING]}
    generated = {
        name: {role: space.audio_file(path) for role, path in pair.items()}
        for name, pair in clips.items()
    }
    names = sorted(generated)
    texts = dict(zip(names, space.text([prompts[n] for n in names]), strict=True)) if names else {}
    roles = ("finetuned", "base")
    out: dict[str, Any] = {"model": space.source, "window_s": space.window / space.sample_rate}
    distance: dict[str, Any] = {"space": "CLAP audio embeddings, 10 s windows", "metric": "KAD"}
    target = torch.cat(held) if held else torch.zeros(0)
    windows = {r: [w for g in generated.values() for w in g[r]] for r in roles}
    if len(target) >= 2 and all(len(w) >= 2 for w in windows.values()):
        for role in roles:
            distance[role] = round(kad(torch.stack(windows[role]), target), 6)
        distance["finetuned_closer"] = distance["finetuned"] < distance["base"]
    else:
        distance["note"] = "fewer than two windows of samples or held-out chunks: no distance"
    out["distance_to_held_out"] = distance
    embedded = {n: {r: clip_embedding(generated[n][r]) for r in roles} for n in names}
    agreement = {n: {r: round(float(embedded[n][r] @ texts[n]), 4) for r in roles} for n in names}
    out["text_agreement"] = {
        "metric": "cosine, clip vs its prompt",
        "clips": agreement,
        **{r: _mean([a[r] for a in agreement.values()]) for r in roles},
    }
    bank = torch.stack(list(train.values())) if train else None
    chunk_names = list(train)

    def nearest_chunk(e: Any) -> tuple[float, str | None]:
        if bank is None:
            return 0.0, None
        sims = bank @ e
        best = int(sims.argmax())
        return round(float(sims[best]), 4), chunk_names[best]

    near = []
    for n in names:
        sim, chunk = nearest_chunk(embedded[n]["finetuned"])
        near.append(
            {"clip": n, "nearest_chunk": chunk, "similarity": sim,
             "base_similarity": nearest_chunk(embedded[n]["base"])[0]}
        )  # fmt: skip
    reference = [nearest_chunk(clip_embedding(h))[0] for h in held]
    out["nearest_training_chunk"] = {
        "metric": "cosine of clip embeddings",
        "clips": near,
        "held_out_reference": _median(reference),
    }
    return out


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def summary(quality: dict[str, Any]) -> str:
    """One human line for the logs and the API."""
    parts = []
    d = quality["distance_to_held_out"]
    if "finetuned" in d:
        verdict = "closer to" if d["finetuned_closer"] else "NOT closer to"
        parts.append(
            f"fine-tune {verdict} the held-out music than the base "
            f"(KAD {d['finetuned']:.4f} vs {d['base']:.4f})"
        )
    best = quality.get("best_epoch")
    if best:
        parts.append(f"best epoch {best['epoch']}/{best['of']} (held-out ce {best['valid_ce']})")
    m = quality["memorisation"]
    top = max((c["overlap"] for c in m["clips"]), default=0.0)
    if m["flagged"]:
        parts.append(f"WARNING: a clip repeats a training chunk ({top:.0%} of its tokens)")
    else:
        parts.append(f"no clip repeats training audio (max overlap {top:.0%})")
    c = quality.get("clap") or {}
    cd, agree = c.get("distance_to_held_out", {}), c.get("text_agreement", {})
    if "finetuned" in cd:
        verdict = "closer" if cd["finetuned_closer"] else "NOT closer"
        parts.append(f"CLAP: {verdict} (KAD {cd['finetuned']:.4f} vs {cd['base']:.4f})")
    if agree.get("finetuned") is not None:
        parts.append(f"CLAP text agreement {agree['finetuned']:.3f} vs base {agree['base']:.3f}")
    return "quality: " + "; ".join(parts)


def write(quality: dict[str, Any], out_dir: Path) -> Path:
    path = out_dir / QUALITY_FILE
    path.write_text(json.dumps(quality, indent=2))
    return path
