"""Key and BPM accuracy and speed on clips rendered from MIDI (issue 4's benchmark).

    MUSICGEN_FT_BENCH=1 scripts/setup.sh   # fluidsynth + a General MIDI soundfont
    .venv/bin/python bench/bench_labels.py [--clips 32] [--cache work/bench_labels]

Renders the clips once (cached), then scores three methods on the same files: the incumbent
fine-tuner's (librosa), Essentia's algorithms at their defaults, and ours (labeling.analysis).
Speed is CPU seconds (process time, one thread) per second of audio, decode included.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labels_methods import METHODS  # noqa: E402
from labels_metrics import acc1, acc2, mirex_key_score  # noqa: E402
from labels_midi import CLIP_SECONDS, default_specs, render  # noqa: E402

TARGETS = {"key": 0.95, "acc1": 0.95, "speed": 100.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seed", type=int, default=7, help="seed of the clip set")
    parser.add_argument("--cache", type=Path, default=Path("work/bench_labels"))
    parser.add_argument("--verbose", action="store_true", help="print every clip")
    args = parser.parse_args(argv)
    if args.clips < 24:
        parser.error("--clips must be at least 24 (the issue's minimum)")
    import essentia

    essentia.log.infoActive = False
    specs = default_specs(args.clips, args.seed)
    cache = args.cache / f"seed{args.seed}"
    paths = [render(spec, cache) for spec in specs]
    audio_seconds = CLIP_SECONDS * len(specs)
    print(f"{len(specs)} clips x {CLIP_SECONDS:.0f} s rendered with fluidsynth in {cache}")
    rows = []
    for name, method in METHODS.items():
        method(paths[0])  # warm-up: imports, caches
        key_total, hits1, hits2, cpu = 0.0, 0, 0, 0.0
        for spec, path in zip(specs, paths, strict=False):
            start = time.process_time()
            tonic, mode, bpm = method(path)
            cpu += time.process_time() - start
            score = mirex_key_score(spec.key, spec.mode, tonic, mode)
            key_total += score
            hits1 += acc1(spec.bpm, bpm)
            hits2 += acc2(spec.bpm, bpm)
            if args.verbose and (score < 1 or not acc1(spec.bpm, bpm)):
                print(f"  {name[:10]} {spec.name}: key {tonic} {mode} ({score}), bpm {bpm}")
        rows.append(
            (
                name,
                key_total / len(specs),
                hits1 / len(specs),
                hits2 / len(specs),
                audio_seconds / cpu,
            )
        )
    print(f"\n{'method':58s} {'key':>6s} {'Acc1':>6s} {'Acc2':>6s} {'x realtime':>11s}")
    for name, key, a1, a2, speed in rows:
        print(f"{name:58s} {key:6.3f} {a1:6.3f} {a2:6.3f} {speed:10.0f}x")
    _, key, a1, _, speed = rows[-1]
    met = key >= TARGETS["key"] and a1 >= TARGETS["acc1"] and speed >= TARGETS["speed"]
    print(
        f"\ntargets (key >= {TARGETS['key']}, Acc1 >= {TARGETS['acc1']}, "
        f">= {TARGETS['speed']:.0f}x real time per core): {'met' if met else 'NOT met'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
