"""Fit the key scorer of `labeling.analysis` (KEY_WEIGHTS) on the development clips only.

    .venv/bin/python bench/labels_key_tune.py [--cache work/bench_labels] [--select]

Development clips (key round 4): `labels_midi` seeds 7 and 8 (`default_specs`), 9 and 10
(`extra_specs`), 11 (`round2_specs`), and the evaluation generator's (`labels_eval_midi`) seeds
102-107, all looked at in earlier rounds. Seed 101 is left out (20 of its major clips carry the
generator's old transposition bug: wrong key ground truth). Seeds from 108 on are never read
here.

Every clip's evidence is computed once and cached (`key_round4/<part>/<clip>.npz` under the
cache): the full-band and bass chroma frames of `analysis.key_chroma` and the key Essentia's
`KeyExtractor` picks with several profiles. The model is a conditional logit over the 24 keys of
a clip (`analysis.key_features` x weights, L2-penalised, features standardised while fitting);
the right candidate is the clip's notated key. Prints, for the current rule (the `shaath`
extractor alone) and the fitted scorer, the MIREX key score of every part with the weights
fitted on the other parts (leave one part out) and the two cross-generator checks, then the
weights fitted on all development clips. `--select` runs a greedy forward selection over
`KEY_FEATURE_POOL` scored by the mean leave-one-part-out MIREX score.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from labels_metrics import mirex_key_score  # noqa: E402

from labeling import analysis  # noqa: E402

MIDI_PARTS = ("seed7", "seed8", "extra9", "extra10", "round2_11")
EVAL_SEEDS = (102, 103, 104, 105, 106, 107)
PARTS = MIDI_PARTS + tuple(f"eval{s}" for s in EVAL_SEEDS)
PROFILES = ("shaath", "edma", "temperley", "krumhansl", "bgate")
L2 = 0.005
NAMES = analysis.PITCH_CLASS_NAMES


# Key profiles (weights of the 12 scale steps from the tonic), as published.
_PROFILES = {
    "kk": (  # Krumhansl & Kessler 1982, probe-tone ratings
        (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
        (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
    ),
    "temperley": (  # Temperley 1999, revised from Kostka & Payne
        (5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0),
        (5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0),
    ),
    "triads": (  # tonic triad 2, the rest of the scale 1 (minor: both sixths and sevenths)
        (2, 0, 1, 0, 2, 1, 0, 2, 0, 1, 0, 1),
        (2, 0, 1, 2, 0, 1, 0, 2, 1, 0, 1, 1),
    ),
}
KEY_FEATURE_POOL = (
    "shaath extractor's key",
    "edma extractor's key",
    "temperley extractor's key",
    "krumhansl extractor's key",
    "bgate extractor's key",
    "shaath extractor picked the fifth above",
    "shaath extractor picked the fifth below",
    "shaath extractor picked the relative",
    "shaath extractor picked the parallel",
    "minor",
    "kk profile, full band",
    "temperley profile, full band",
    "triads profile, full band",
    "kk profile, bass",
    "triads profile, bass",
    "tonic share, full band",
    "tonic share, bass",
    "fifth share, bass",
    "bass on the tonic (frames)",
    "non-scale share, full band",
    "raised seventh (minor)",
    "tonic chord share",
    "dominant chord share",
    "subdominant chord share",
    "diatonic chord share",
    "relative's tonic chord share",
    "V-I share of chord changes",
    "changes to the tonic chord",
    "tonic chord over tonic bass",
    "non-scale share, bass",
    "tonic triad match (mean)",
    "diatonic triad match (mean of the best)",
)
POOL_COLUMNS = [KEY_FEATURE_POOL.index(name) for name in analysis.KEY_FEATURES]


def _corr_rotations(vector: np.ndarray, profile: tuple[float, ...]) -> np.ndarray:
    """Pearson correlation of `vector` with `profile` rotated to each of the 12 tonics."""
    prof = np.asarray(profile, dtype=np.float64)
    rolled = np.stack([np.roll(prof, t) for t in range(12)])
    v = vector - vector.mean()
    r = rolled - rolled.mean(axis=1, keepdims=True)
    denom = np.linalg.norm(r, axis=1) * max(float(np.linalg.norm(v)), 1e-12)
    return (r @ v) / denom


def key_feature_pool(
    chroma: analysis.KeyChroma,
    shaath: int,
    votes: list[int],
) -> np.ndarray:
    """(24, len(KEY_FEATURE_POOL)) evidence for each candidate key (index = tonic + 12 x minor):
    `shaath` is the `shaath` extractor's key index (-1 for none), `votes` the key index each of
    PROFILES picks."""
    full = chroma.full.astype(np.float64).mean(axis=0)
    bass = chroma.bass.astype(np.float64).mean(axis=0)
    full_share = full / max(float(full.sum()), 1e-12)
    bass_share = bass / max(float(bass.sum()), 1e-12)
    bass_top = np.argmax(chroma.bass, axis=1) if chroma.bass.shape[0] else np.zeros(0, int)
    bass_frames = np.bincount(bass_top, minlength=12)[:12] / max(bass_top.size, 1)
    match, is_voiced = analysis.triad_matches(chroma)
    chords = np.argmax(match, axis=1) if match.shape[0] else np.zeros(0, dtype=int)
    chords[~is_voiced] = -1
    voiced_match = match[is_voiced]
    mean_match = voiced_match.mean(axis=0) if voiced_match.shape[0] else np.zeros(24)
    voiced = chords[chords >= 0]
    hist = np.bincount(voiced, minlength=24)[:24] / max(voiced.size, 1)
    changes = voiced[np.flatnonzero(np.diff(voiced) != 0) + 1] if voiced.size else voiced
    before = voiced[np.flatnonzero(np.diff(voiced) != 0)] if voiced.size else voiced
    n_changes = max(changes.size, 1)
    over_bass = np.zeros(24)
    if chords.size and bass_top.size:
        n = min(chords.size, bass_top.size)
        c, b = chords[:n], bass_top[:n]
        on_root = (c >= 0) & (c % 12 == b)
        over_bass = np.bincount(c[on_root], minlength=24)[:24] / max(int((c >= 0).sum()), 1)
    corr = {
        (name, minor): _corr_rotations(full, prof[minor])
        for name, prof in _PROFILES.items()
        for minor in (0, 1)
    }
    corr_bass = {
        (name, minor): _corr_rotations(bass, _PROFILES[name][minor])
        for name in ("kk", "triads")
        for minor in (0, 1)
    }
    out = np.zeros((24, len(KEY_FEATURE_POOL)))
    for k in range(24):
        t, minor = k % 12, k // 12
        tonic_chord = t + 12 * minor
        dominant = (t + 7) % 12
        sub = (t + 5) % 12 + 12 * minor
        relative = (t + 9) % 12 + 12 if not minor else (t + 3) % 12
        diatonic = sum(hist[(t + s) % 12 + 12 * m] for s, m in analysis.DIATONIC_CHORDS[minor])
        scale = [(t + s) % 12 for s in analysis.SCALES[minor]]
        raised = 0.0
        if minor:
            raised = full[(t + 11) % 12] / max(full[(t + 10) % 12] + full[(t + 11) % 12], 1e-12)
        sh_t, sh_m = shaath % 12, shaath // 12
        row = {
            "minor": float(minor),
            "kk profile, full band": corr["kk", minor][t],
            "temperley profile, full band": corr["temperley", minor][t],
            "triads profile, full band": corr["triads", minor][t],
            "kk profile, bass": corr_bass["kk", minor][t],
            "triads profile, bass": corr_bass["triads", minor][t],
            "tonic share, full band": full_share[t],
            "tonic share, bass": bass_share[t],
            "fifth share, bass": bass_share[dominant],
            "bass on the tonic (frames)": bass_frames[t],
            "non-scale share, full band": 1.0 - float(full_share[scale].sum()),
            "raised seventh (minor)": raised,
            "tonic chord share": hist[tonic_chord],
            "dominant chord share": hist[dominant],
            "subdominant chord share": hist[sub],
            "diatonic chord share": diatonic,
            "relative's tonic chord share": hist[relative],
            "V-I share of chord changes": float(
                ((before == dominant) & (changes == tonic_chord)).sum()
            )
            / n_changes,
            "changes to the tonic chord": float((changes == tonic_chord).sum()) / n_changes,
            "tonic chord over tonic bass": over_bass[tonic_chord],
            "non-scale share, bass": 1.0 - float(bass_share[scale].sum()),
            "tonic triad match (mean)": mean_match[tonic_chord],
            "diatonic triad match (mean of the best)": float(
                voiced_match[:, [(t + s) % 12 + 12 * m for s, m in analysis.DIATONIC_CHORDS[minor]]]
                .max(axis=1)
                .mean()
            )
            if voiced_match.shape[0]
            else 0.0,
        }
        for profile, vote in zip(PROFILES, votes, strict=True):
            row[f"{profile} extractor's key"] = float(vote == k)
        if shaath >= 0:
            row["shaath extractor picked the fifth above"] = float(
                sh_m == minor and sh_t == dominant
            )
            row["shaath extractor picked the fifth below"] = float(
                sh_m == minor and sh_t == (t + 5) % 12
            )
            row["shaath extractor picked the relative"] = float(shaath == relative)
            row["shaath extractor picked the parallel"] = float(sh_t == t and sh_m != minor)
        out[k] = [row.get(name, 0.0) for name in KEY_FEATURE_POOL]
    return out


def part_specs(part: str, cache: Path) -> list[tuple[Any, Path]]:
    """(spec, rendered wav) of a development part (rendered once, cached)."""
    from bench_labels import clip_set

    if part.startswith("eval"):
        import labels_eval_midi

        seed = int(part[4:])
        if seed == 101 or seed >= 108:
            raise ValueError(f"seed {seed} is not key development data")
        specs = labels_eval_midi.eval_specs(4, seed)
        return [(s, labels_eval_midi.render(s, cache / part)) for s in specs]
    specs, paths = clip_set(part, 32, cache, 0)
    return list(zip(specs, paths, strict=True))


def extractor_keys(audio: np.ndarray) -> np.ndarray:
    """(profiles, 2): candidate index (tonic + 12 x minor, -1 for none) and strength."""
    out = np.full((len(PROFILES), 2), -1.0)
    for i, profile in enumerate(PROFILES):
        est = analysis.estimate_extractor_key(audio, profile)
        if est is not None:
            out[i] = (analysis.key_index(est.key, est.scale), est.strength)
    return out


def evidence(path: Path, store: Path) -> dict[str, np.ndarray]:
    if store.exists():
        with np.load(store) as data:
            return {k: data[k] for k in data.files}
    audio = analysis.load_mono(path)
    chroma = analysis.key_chroma(audio)
    out = {"full": chroma.full, "bass": chroma.bass, "extractor": extractor_keys(audio)}
    store.parent.mkdir(parents=True, exist_ok=True)
    np.savez(store, full=out["full"], bass=out["bass"], extractor=out["extractor"])
    return out


Clip = tuple[str, int, np.ndarray]  # name, true candidate index, (24, features) of the pool


def load_parts(cache: Path) -> dict[str, list[Clip]]:
    data: dict[str, list[Clip]] = {}
    for part in PARTS:
        clips = []
        for spec, path in part_specs(part, cache):
            ev = evidence(path, cache / "key_round4" / part / f"{path.stem}.npz")
            chroma = analysis.KeyChroma(full=ev["full"], bass=ev["bass"])
            shaath = int(ev["extractor"][0, 0])
            votes = [int(v) for v in ev["extractor"][:, 0]]
            feats = key_feature_pool(chroma, shaath, votes)
            # What the labeling stage computes must be what is fitted here.
            used = analysis.key_features(chroma, shaath, votes[PROFILES.index("temperley")])
            assert np.allclose(used, feats[:, POOL_COLUMNS]), path
            truth = spec.tonic + (12 if spec.mode == "minor" else 0)
            clips.append((spec.name, truth, feats))
        data[part] = clips
    return data


def score_of(truth: int, guess: int) -> float:
    return mirex_key_score(
        NAMES[truth % 12], analysis.key_mode(truth), NAMES[guess % 12], analysis.key_mode(guess)
    )


def fit(clips: list[Clip], cols: list[int], l2: float = L2) -> np.ndarray:
    """Raw-scale weights of the pool columns `cols` (zero elsewhere)."""
    from scipy.optimize import minimize

    x = np.stack([f[:, cols] for _, _, f in clips])  # (clips, 24, k)
    y = np.array([t for _, t, _ in clips])
    flat = x.reshape(-1, len(cols))
    mu, sd = flat.mean(axis=0), flat.std(axis=0)
    sd = np.where(sd > 1e-9, sd, 1.0)
    z = (x - mu) / sd
    n = len(clips)
    rows = np.arange(n)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = z @ w
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        nll = -float(np.log(np.maximum(p[rows, y], 1e-12)).sum())
        grad = -(z[rows, y].sum(axis=0) - np.einsum("nc,nck->k", p, z))
        return nll / n + l2 * float(w @ w), grad / n + 2 * l2 * w

    result = minimize(loss, np.zeros(len(cols)), jac=True, method="L-BFGS-B")
    full = np.zeros(len(KEY_FEATURE_POOL))
    full[cols] = result.x / sd
    return full


def mirex(clips: list[Clip], w: np.ndarray, verbose: bool = False) -> float:
    total = 0.0
    for name, truth, feats in clips:
        guess = int(np.argmax(feats @ w))
        s = score_of(truth, guess)
        total += s
        if verbose and s < 1:
            print(f"    {name}: {NAMES[guess % 12]} {analysis.key_mode(guess)} ({s})")
    return total / len(clips)


def baseline_weights() -> np.ndarray:
    w = np.zeros(len(KEY_FEATURE_POOL))
    w[KEY_FEATURE_POOL.index("shaath extractor's key")] = 1.0
    return w


def held_out(data: dict[str, list[Clip]], cols: list[int], l2: float = L2) -> dict[str, float]:
    out = {}
    for part, clips in data.items():
        rest = [c for o, cs in data.items() if o != part for c in cs]
        out[part] = mirex(clips, fit(rest, cols, l2))
    midi = [c for p in MIDI_PARTS for c in data[p]]
    gen = [c for p, cs in data.items() if p.startswith("eval") for c in cs]
    out["midi->gen"] = mirex(gen, fit(midi, cols, l2))
    out["gen->midi"] = mirex(midi, fit(gen, cols, l2))
    out["mean"] = float(np.mean([out[p] for p in data]))
    return out


def row(label: str, figures: dict[str, float]) -> str:
    keys = [*PARTS, "mean", "midi->gen", "gen->midi"]
    return f"{label:28s} " + " ".join(f"{figures[k]:.3f}" for k in keys)


def select(data: dict[str, list[Clip]], l2: float, steps: int) -> list[int]:
    chosen: list[int] = []
    best_mean = -1.0
    for _ in range(steps):
        trials = []
        for j in range(len(KEY_FEATURE_POOL)):
            if j in chosen:
                continue
            figures = held_out(data, [*chosen, j], l2)
            trials.append((figures["mean"], j, figures))
        trials.sort(key=lambda t: -t[0])
        mean, j, figures = trials[0]
        print(f"  + {KEY_FEATURE_POOL[j]!r}: held-out mean {mean:.3f}", flush=True)
        if mean <= best_mean + 1e-4:
            break
        chosen.append(j)
        best_mean = mean
        print(row("    selected", figures), flush=True)
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("work/bench_labels"))
    parser.add_argument("--l2", type=float, default=L2)
    parser.add_argument("--select", action="store_true")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--features", default="", help="comma-separated pool names to score")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    import essentia

    essentia.log.infoActive = False
    start = time.time()
    data = load_parts(args.cache)
    print(f"{sum(map(len, data.values()))} development clips ({time.time() - start:.0f} s)")
    print(f"{'':28s} " + " ".join(f"{k[-6:]:>5s}" for k in [*PARTS, "mean", "m->g", "g->m"]))
    base = baseline_weights()
    figures = {p: mirex(cs, base) for p, cs in data.items()}
    figures["mean"] = float(np.mean(list(figures.values())))
    figures["midi->gen"] = mirex(
        [c for p, cs in data.items() if p.startswith("eval") for c in cs], base
    )
    figures["gen->midi"] = mirex([c for p in MIDI_PARTS for c in data[p]], base)
    print(row("current rule (shaath)", figures))
    if args.select:
        cols = select(data, args.l2, args.steps)
    elif args.features:
        cols = [KEY_FEATURE_POOL.index(n) for n in args.features.split(",")]
    else:
        cols = [KEY_FEATURE_POOL.index(n) for n in analysis.KEY_FEATURES]
    print(row("scorer, held out", held_out(data, cols, args.l2)))
    everything = [c for cs in data.values() for c in cs]
    w = fit(everything, cols, args.l2)
    print("features and weights fitted on all development clips:")
    for j in cols:
        print(f"  {w[j]:+9.4f}  {KEY_FEATURE_POOL[j]}")
    print("KEY_WEIGHTS = (" + ", ".join(f"{w[j]:.4f}" for j in cols) + ")")
    for part, clips in data.items():
        print(f"fit on all, {part}: {mirex(clips, w, args.verbose):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
