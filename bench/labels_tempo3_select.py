"""Tempo round 3: candidate features for the metrical level, chosen on development clips only.

    .venv/bin/python bench/labels_tempo3_cache.py      # once: the clips' raw evidence
    .venv/bin/python bench/labels_tempo3_select.py [--steps 6] [--l2 0.3] [--cnn]

Reads the cache of `labels_tempo3_cache.py` (labels_midi seeds 7-11, the evaluation generator's
seeds 101-109; evaluation seeds 110 and 111 are never read). Builds, for every candidate level
of `analysis.metrical_ratios`, the nine round-2 features and a pool of new ones (harmonic rhythm
from a fine chroma's change curve read on the candidate's beat grid, bass-note changes, meter
periodicities), and runs greedy forward selection from the round-2 nine: each step adds the
pool feature that most raises the leave-one-part-out mean Acc1 (weights fitted on the other
parts by the conditional logit of `labels_tune.py`). Prints each step's per-part held-out Acc1,
the cross-generator checks, and the final weights. `--cnn` adds four TempoCNN features to the
pool, from the distributions `labels_tempocnn.py` cached.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from labels_metrics import acc1  # noqa: E402

from labeling import analysis  # noqa: E402

FINE_RATE = analysis.ANALYSIS_SR / 512
# Round 2's nine features (the first nine of analysis.FEATURES), the selection's starting set.
ROUND2 = tuple(analysis.FEATURES[:9])
BASS_RATE = analysis.BASS_SR / 256
PARTS = (
    "seed7",
    "seed8",
    "extra9",
    "extra10",
    "round2_11",
    *(f"eval{s}" for s in range(101, 110)),
)


def change_curve(chroma: np.ndarray, half: int) -> np.ndarray:
    """Cosine distance between the mean chroma of the `half` frames before and after each frame
    (log-compressed, per-frame normalised): high where the harmony changes."""
    c = np.log1p(100.0 * chroma / max(float(chroma.max()), 1e-9)).astype(np.float64)
    c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-9)
    csum = np.vstack([np.zeros((1, 12)), np.cumsum(c, axis=0)])
    n = c.shape[0]
    idx = np.arange(n)
    lo, hi = np.clip(idx - half, 0, n), np.clip(idx + half, 0, n)
    before = csum[idx] - csum[lo]
    after = csum[hi] - csum[idx]
    nb = np.linalg.norm(before, axis=1)
    na = np.linalg.norm(after, axis=1)
    cos = np.sum(before * after, axis=1) / np.maximum(nb * na, 1e-9)
    out = np.where((nb > 0) & (na > 0), 1.0 - cos, 0.0)
    return np.maximum(out, 0.0)


def to_odf(curve: np.ndarray, rate: float, n: int) -> np.ndarray:
    t = np.arange(n) / analysis.ODF_RATE
    return np.interp(t, np.arange(curve.size) / rate, curve)


def change_rate(curve: np.ndarray, rate: float, gap_s: float = 0.25) -> float:
    """Peaks per second of a change curve above its mean + 1 std, gap_s apart."""
    if curve.size < 3:
        return 0.0
    thr = float(curve.mean() + curve.std())
    inner = curve[1:-1]
    peaks = np.flatnonzero((inner > curve[:-2]) & (inner >= curve[2:]) & (inner > thr)) + 1
    kept, last, gap = 0, -(10**9), round(gap_s * rate)
    for i in peaks:
        if i - last >= gap:
            kept, last = kept + 1, int(i)
    return kept / (curve.size / rate)


CNN_MODELS = ("fcn", "deepsquare_k8", "deeptemp_k8")
CNN_NAMES = ["log fcn mass", "log deepsquare mass", "log deeptemp mass", "log mean CNN mass"]


def cnn_features(d: dict[str, np.ndarray], bpm: float) -> list[float]:
    """TempoCNN evidence for a candidate: the log of each model's probability mass within 4 % of
    the candidate's tempo (classes are 30-285 BPM), and of the three models' mean."""
    classes = np.arange(256) + 30.0
    near = np.abs(classes / bpm - 1.0) <= 0.04
    mass = [float(d[f"cnn_{m}"][near].sum()) for m in CNN_MODELS]
    return [float(np.log(m + 1e-3)) for m in mass] + [float(np.log(np.mean(mass) + 1e-3))]


def lvl(curve: np.ndarray, ticks: np.ndarray, step: float) -> float:
    return analysis._level(curve, ticks, step)[0]


def pool_features(d: dict[str, np.ndarray]) -> tuple[list[float], list[np.ndarray], list[str]]:
    curves = analysis.OnsetCurves(
        full=d["full"], beat=d["beat"], low=d["low"], low_energy=float(d["low_energy"])
    )
    ticks = d["ticks"]
    if ticks.size < 4:
        return [], [], []
    base = analysis.tempo_features(curves, ticks)
    n = curves.beat.size
    harm_s = change_curve(d["fine"], 4)  # ~0.09 s either side
    harm_l = change_curve(d["fine"], 12)  # ~0.28 s either side
    bassc = change_curve(d["bass"], 4)  # ~0.19 s
    hs = to_odf(harm_s, FINE_RATE, n)
    hl = to_odf(harm_l, FINE_RATE, n)
    hb = to_odf(bassc, BASS_RATE, n)
    hs_n = analysis._smoothed_max(hs / max(float(hs.mean()), 1e-9))
    hl_n = analysis._smoothed_max(hl / max(float(hl.mean()), 1e-9))
    hb_n = analysis._smoothed_max(hb / max(float(hb.mean()), 1e-9))
    rate_hl = change_rate(harm_l, FINE_RATE, 0.3)
    rate_hs = change_rate(harm_s, FINE_RATE, 0.12)
    rate_hb = change_rate(bassc, BASS_RATE, 0.15)
    ac_beat = analysis.autocorrelation(curves.beat)
    ac_low = analysis.autocorrelation(curves.low)
    ac_hl = analysis.autocorrelation(hl)
    ac_hb = analysis.autocorrelation(hb)
    lr = analysis._log_ratio
    names = [
        "harm(long) strength at beats",
        "harm(long) accent x1/2",
        "harm(long) accent x1/3",
        "harm(long) accent x1/4",
        "harm(short) strength at beats",
        "harm(short) accent x1/2",
        "bass change strength at beats",
        "bass change accent x1/2",
        "bass change accent x1/3",
        "log2 beats per chord change",
        "log2 beats per chord change ^2",
        "log2(chroma changes per beat)^2",
        "log2 bass changes per beat",
        "log2(bass changes per beat)^2",
        "harm(long) periodicity 2 beats",
        "harm(long) periodicity 3 - 4 beats",
        "harm(long) periodicity 4 beats",
        "bass change periodicity 3 - 4 beats",
        "beat-band periodicity 2 beats",
        "beat-band periodicity 4 beats",
        "beat-band periodicity 3 - 4 beats",
        "low-band periodicity 3 - 4 beats",
        "low-band periodicity half and 1.5 beats",
        "x2 from tracker",
        "x1/2 from tracker",
    ]
    if "cnn_fcn" in d:
        names += CNN_NAMES
    bpms, feats = [], []
    for ratio, bpm, f in base:
        step = 1.0 / ratio
        beat_s = 60.0 / bpm
        h1 = lvl(hl_n, ticks, step)
        s1 = lvl(hs_n, ticks, step)
        b1 = lvl(hb_n, ticks, step)
        per_change = (1.0 / max(rate_hl, 1e-3)) / beat_s
        extra = [
            np.log(h1 + 1e-3),
            lr(lvl(hl_n, ticks, 2 * step), h1),
            lr(lvl(hl_n, ticks, 3 * step), h1),
            lr(lvl(hl_n, ticks, 4 * step), h1),
            np.log(s1 + 1e-3),
            lr(lvl(hs_n, ticks, 2 * step), s1),
            np.log(b1 + 1e-3),
            lr(lvl(hb_n, ticks, 2 * step), b1),
            lr(lvl(hb_n, ticks, 3 * step), b1),
            np.log2(np.clip(per_change, 0.125, 64)),
            np.log2(np.clip(per_change, 0.125, 64)) ** 2,
            np.log2(max(rate_hs * beat_s, 0.125)) ** 2,
            np.log2(max(rate_hb * beat_s, 0.125)),
            np.log2(max(rate_hb * beat_s, 0.125)) ** 2,
            analysis.comb(ac_hl, bpm, (2.0,)),
            analysis.comb(ac_hl, bpm, (3.0,)) - analysis.comb(ac_hl, bpm, (4.0,)),
            analysis.comb(ac_hl, bpm, (4.0,)),
            analysis.comb(ac_hb, bpm, (3.0,)) - analysis.comb(ac_hb, bpm, (4.0,)),
            analysis.comb(ac_beat, bpm, (2.0,)),
            analysis.comb(ac_beat, bpm, (4.0,)),
            analysis.comb(ac_beat, bpm, (3.0,)) - analysis.comb(ac_beat, bpm, (4.0,)),
            analysis.comb(ac_low, bpm, (3.0,)) - analysis.comb(ac_low, bpm, (4.0,)),
            analysis.comb(ac_low, bpm, (0.5, 1.5)),
            1.0 if abs(ratio - 2.0) < 1e-6 else 0.0,
            1.0 if abs(ratio - 0.5) < 1e-6 else 0.0,
        ]
        if "cnn_fcn" in d:
            extra += cnn_features(d, bpm)
        bpms.append(bpm)
        feats.append(np.concatenate([f[: len(ROUND2)], np.asarray(extra, dtype=np.float64)]))
    return bpms, feats, list(ROUND2) + names


class Data:
    def __init__(self, clips: list[tuple[str, str, float, list[float], np.ndarray]]):
        self.clips = clips


def load(cache: Path, cnn: bool = False) -> tuple[dict[str, list], list[str]]:
    root = cache / "tempo_round3"
    dists: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    out: dict[str, list] = {}
    names: list[str] = []
    for part in PARTS:
        rows = []
        for f in sorted((root / part).glob("*.npz")):
            d = dict(np.load(f))
            for m in CNN_MODELS if cnn else ():
                key = (part, m)
                if key not in dists:
                    with np.load(cache / "tempocnn" / f"{part}_{m}.npz") as z:
                        dists[key] = {k: z[k] for k in z.files}
                d[f"cnn_{m}"] = dists[key][f.stem]
            bpms, feats, nm = pool_features(d)
            if nm:
                names = nm
            rows.append((f.stem, float(d["bpm"]), bpms, np.array(feats) if feats else None))
        out[part] = rows
    return out, names


def stack(rows: list, cols: list[int]):
    X, seg, right, clipok = [], [0], [], []
    for _, bpm, bpms, feats in rows:
        if feats is None or not len(bpms):
            clipok.append(False)
            continue
        clipok.append(True)
        X.append(feats[:, cols])
        right += [acc1(bpm, b) for b in bpms]
        seg.append(seg[-1] + len(bpms))
    return np.vstack(X), np.array(seg), np.array(right, float), len(rows)


def fit(X, seg, right, l2: float) -> np.ndarray:
    from scipy.optimize import minimize

    starts = seg[:-1]
    usable_clip = np.add.reduceat(right, starts) > 0
    nuse = int(usable_clip.sum())
    clip_of = np.repeat(np.arange(starts.size), np.diff(seg))
    use_c = usable_clip[clip_of]

    def loss(w):
        s = X @ w
        m = np.maximum.reduceat(s, starts)
        e = np.exp(s - m[clip_of])
        z = np.add.reduceat(e, starts)
        p = e / z[clip_of]
        pr = np.add.reduceat(p * right, starts)
        prc = np.maximum(pr, 1e-12)
        total = l2 * float(w @ w) - float(np.log(prc[usable_clip]).sum())
        g_row = np.where(use_c, p * right / prc[clip_of] - p, 0.0)
        grad = 2 * l2 * w - X.T @ g_row
        return total / nuse, grad / nuse

    r = minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B")
    return r.x


def acc(X, seg, right, n, w) -> float:
    s = X @ w
    hits = 0
    for i in range(seg.size - 1):
        a, b = seg[i], seg[i + 1]
        hits += right[a + int(np.argmax(s[a:b]))] > 0
    return hits / n


def evaluate(data, cols, l2, scale):
    st = {p: stack(data[p], cols) for p in PARTS}
    sc = scale[cols]
    per = {}
    for p in PARTS:
        rest = [st[q] for q in PARTS if q != p]
        X = np.vstack([r[0] for r in rest]) / sc
        segs, off = [0], 0
        for r in rest:
            segs += list(r[1][1:] + off)
            off += r[1][-1]
        right = np.concatenate([r[2] for r in rest])
        w = fit(X, np.array(segs), right, l2)
        Xp, sp, rp, npp = st[p]
        per[p] = acc(Xp / sc, sp, rp, npp, w)
    cross = []
    for train, test in ((PARTS[:5], PARTS[5:]), (PARTS[5:], PARTS[:5])):
        X = np.vstack([st[q][0] for q in train]) / sc
        segs, off = [0], 0
        for q in train:
            segs += list(st[q][1][1:] + off)
            off += st[q][1][-1]
        right = np.concatenate([st[q][2] for q in train])
        w = fit(X, np.array(segs), right, l2)
        h = sum(acc(st[q][0] / sc, st[q][1], st[q][2], st[q][3], w) * st[q][3] for q in test)
        cross.append(h / sum(st[q][3] for q in test))
    return per, cross


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("work/bench_labels"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--l2", type=float, default=0.3)
    parser.add_argument("--start", default="", help="comma-separated pool indices to start from")
    parser.add_argument(
        "--cnn", action="store_true", help="add TempoCNN features (labels_tempocnn.py's cache)"
    )
    args = parser.parse_args()
    data, names = load(args.cache, args.cnn)
    allX = np.vstack([r[3] for p in PARTS for r in data[p] if r[3] is not None])
    scale = np.ones(allX.shape[1])
    nbase = len(ROUND2)
    scale[nbase:] = np.maximum(allX[:, nbase:].std(axis=0), 1e-9)
    total = sum(len(data[p]) for p in PARTS)
    reach = sum(any(acc1(bpm, b) for b in bpms) for p in PARTS for _, bpm, bpms, _ in data[p])
    print(f"{total} clips, right level among candidates: {reach}")
    cols = list(range(nbase)) + [int(x) for x in args.start.split(",") if x]

    def show(tag, per, cross):
        m = float(np.mean(list(per.values())))
        parts = " ".join(f"{per[p]:.3f}" for p in PARTS)
        print(f"{tag}: mean {m:.4f} | {parts} | cross {cross[0]:.3f} {cross[1]:.3f}", flush=True)
        return m

    per, cross = evaluate(data, cols, args.l2, scale)
    best = show("base " + ",".join(map(str, cols)), per, cross)
    for _ in range(args.steps):
        trial = {}
        for j in range(nbase, len(names)):
            if j in cols:
                continue
            per, cross = evaluate(data, [*cols, j], args.l2, scale)
            trial[j] = (float(np.mean(list(per.values()))), per, cross)
            print(
                f"   +{j} {names[j]}: {trial[j][0]:.4f} cross {cross[0]:.3f} {cross[1]:.3f}",
                flush=True,
            )
        j = max(trial, key=lambda k: trial[k][0])
        if trial[j][0] <= best:
            print("no gain; stop")
            break
        cols.append(j)
        best = show(f"ADD {j} {names[j]}", trial[j][1], trial[j][2])
    st = stack([r for p in PARTS for r in data[p]], cols)
    w = fit(st[0] / scale[cols], st[1], st[2], args.l2) / scale[cols]
    for c, x in zip(cols, w, strict=True):
        print(f"  {x:+9.4f}  [{c}] {names[c]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# The round-3 candidate rule, frozen 2026-12-02 19:10 UTC (not adopted into labeling.analysis:
# the bundled example's `bright_arpeggio`, wrong at 64 under both rules, would get its wrong
# tempo written at confidence 0.91): round 2's nine features, + pool features 20 and 25, weights
# fitted here on all 760 development clips (L2 0.3). Run by bench_labels.py as a method.
CANDIDATE_COLUMNS = (*range(9), 20, 25)
CANDIDATE_WEIGHTS = (
    -3.2027, -1.4474, 0.1636, 1.9331, 4.6284, 2.3654, -1.8967, -0.2581, -0.3701, -0.9892, 2.4843,
)  # fmt: skip


def candidate_tempo(audio: np.ndarray) -> float | None:
    """Tempo of mono audio at ANALYSIS_SR under the round-3 candidate (the level choice of
    `analysis.estimate_tempo`, with the two harmonic-rhythm features added)."""
    import essentia.standard as es

    if audio.size < analysis.MIN_SECONDS * analysis.ANALYSIS_SR or not np.any(audio):
        return None
    curves = analysis.onset_curves(audio)
    ticks = np.asarray(es.TempoTapDegara(sampleRateODF=analysis.ODF_RATE)(curves.beat), np.float64)
    if ticks.size < 4:
        return None
    fine = analysis._peak_chroma(audio, 2048, 512, analysis.ANALYSIS_SR, (150.0, 5000.0))
    evidence = {
        "full": curves.full,
        "beat": curves.beat,
        "low": curves.low,
        "low_energy": np.asarray(curves.low_energy),
        "ticks": ticks,
        "fine": fine,
        "bass": np.zeros((8, 12)),  # the bass features are not among the candidate's
    }
    bpms, feats, _ = pool_features(evidence)
    if not bpms:
        return None
    scores = np.asarray(feats)[:, list(CANDIDATE_COLUMNS)] @ np.asarray(CANDIDATE_WEIGHTS)
    bpm = bpms[int(np.argmax(scores))]
    tracked = 60.0 / float(np.median(np.diff(ticks)))
    slope = float(np.polyfit(np.arange(ticks.size), ticks, 1)[0])
    if slope > 0 and abs(60.0 / slope - tracked) <= 0.02 * tracked:
        bpm *= (60.0 / slope) / tracked
    return round(bpm, 2)
