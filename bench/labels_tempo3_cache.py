"""Tempo round 3: cache each development clip's raw tempo evidence (dev only).

    .venv/bin/python bench/labels_tempo3_cache.py [--cache work/bench_labels]

Development parts: labels_midi seeds 7-11 and the evaluation generator's seeds 101-109 (all
looked at before round 3). Per clip, one `.npz` under `<cache>/tempo_round3/<part>/`: the onset
curves, the tracker's ticks, and a fine chroma (frame 2048, hop 512 at 22.05 kHz, 150 Hz-5 kHz;
43 frames/s) and a bass chroma (38-250 Hz, hop 256 at 5.5 kHz) for harmonic-rhythm features.
Evaluation seeds 110 and 111 are never read here.
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

from labeling import analysis  # noqa: E402

DEV_EVAL_SEEDS = tuple(range(101, 110))


def parts(cache: Path) -> dict[str, list[tuple[str, float, Path]]]:
    import labels_eval_midi
    from labels_tune import dev_sets

    sets = {k: v for k, v in dev_sets(cache).items() if not k.startswith("eval")}
    for seed in DEV_EVAL_SEEDS:
        sets[f"eval{seed}"] = [
            (s.name, s.bpm, labels_eval_midi.render(s, cache / f"eval{seed}"))
            for s in labels_eval_midi.eval_specs(4, seed)
        ]
    return sets


def evidence(path: Path) -> dict[str, np.ndarray]:
    import essentia.standard as es
    import soxr

    audio = analysis.load_mono(path)
    curves = analysis.onset_curves(audio)
    ticks = np.asarray(es.TempoTapDegara(sampleRateODF=analysis.ODF_RATE)(curves.beat), np.float64)
    fine = analysis._peak_chroma(audio, 2048, 512, analysis.ANALYSIS_SR, (150.0, 5000.0))
    low = soxr.resample(audio, analysis.ANALYSIS_SR, analysis.BASS_SR, quality="HQ")
    bass = analysis._peak_chroma(low, 2048, 256, analysis.BASS_SR, (38.0, 250.0))
    return {
        "full": curves.full,
        "beat": curves.beat,
        "low": curves.low,
        "low_energy": np.asarray(curves.low_energy),
        "ticks": ticks,
        "fine": fine.astype(np.float32),
        "bass": bass.astype(np.float32),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("work/bench_labels"))
    args = parser.parse_args()
    import essentia

    essentia.log.infoActive = False
    out = args.cache / "tempo_round3"
    for part, clips in parts(args.cache).items():
        folder = out / part
        folder.mkdir(parents=True, exist_ok=True)
        for name, bpm, path in clips:
            target = folder / f"{name}.npz"
            if not target.exists():
                np.savez(target, bpm=np.asarray(bpm), **evidence(path))  # type: ignore[arg-type]
        print(part, len(clips), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
