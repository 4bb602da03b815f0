"""Key and BPM accuracy and speed on clips rendered from MIDI (issue 4's benchmark).

    MUSICGEN_FT_BENCH=1 scripts/setup.sh   # fluidsynth + a General MIDI soundfont
    .venv/bin/python bench/bench_labels.py [--set dev|devgen2|seed7|...|eval] [--eval-seed N]

Sets: `dev` (development clips of `labels_midi`, which the tempo weights were fitted on: seeds 7
and 8 of `default_specs`, `extra_specs` seeds 9 and 10, `round2_specs` seed 11), `devgen2` (the
other generator's seeds 101-103, looked at in round 1 and fitted on from round 2 on), one of
their parts, or `eval` (`labels_eval_midi` at `--eval-seed`, from 104 on never fitted or looked
at before its one run; for the key, 102-107 are development data from key round 4 on, 108 and
109 its fresh sets). Renders the clips once (cached), then scores the methods of
`labels_methods.METHODS` on the same files: the incumbent fine-tuner's (librosa), Essentia's
algorithms at their defaults, the octave rule before issue 13, the round-1 rule, the key rule
before key round 4 (the `shaath` extractor, with the current tempo rule), and ours
(labeling.analysis). For ours it also prints the share of clips whose tempo clears the
description threshold (`LabelSettings.min_bpm_confidence`) and Acc1 on those.
Speed is CPU seconds (process time, one thread) per second of audio, decode included.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labels_methods import METHODS, confident_tempo, ours  # noqa: E402
from labels_metrics import acc1, acc2, mirex_key_score  # noqa: E402
from labels_midi import CLIP_SECONDS, default_specs, extra_specs, render, round2_specs  # noqa: E402

TARGETS = {"key": 0.95, "acc1": 0.95, "speed": 100.0}


def clip_set(name: str, clips: int, cache: Path, eval_seed: int) -> tuple[list[Any], list[Path]]:
    """(specs, rendered paths) of a named set; every spec has name, key, mode and bpm."""
    if name in ("eval", "devgen2", "eval101", "eval102", "eval103"):
        import labels_eval_midi

        named = {"eval": (eval_seed,), "devgen2": (101, 102, 103)}
        seeds = named[name] if name in named else (int(name[4:]),)
        specs: list[Any] = []
        paths: list[Path] = []
        for seed in seeds:
            chunk_: list[Any] = labels_eval_midi.eval_specs(4, seed)
            specs += chunk_
            paths += [labels_eval_midi.render(s, cache / f"eval{seed}") for s in chunk_]
        return specs, paths
    parts = {
        "seed7": (7,),
        "seed8": (8,),
        "extra9": (9,),
        "extra10": (10,),
        "round2_11": (11,),
        "dev": (7, 8, 9, 10, 11),
    }
    specs, paths = [], []
    for seed in parts[name]:
        if seed == 11:
            chunk = round2_specs(40, seed)
            folder = cache / "round2_11"
        elif seed >= 9:
            chunk = extra_specs(40 if seed == 10 else clips, seed)
            folder = cache / f"extra{seed}"
        else:
            chunk = default_specs(clips, seed)
            folder = cache / f"seed{seed}"
        specs += chunk
        paths += [render(s, folder) for s in chunk]
    return specs, paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument(
        "--set",
        default="seed7",
        choices=(
            "dev",
            "devgen2",
            "seed7",
            "seed8",
            "extra9",
            "extra10",
            "round2_11",
            "eval101",
            "eval102",
            "eval103",
            "eval",
        ),
    )
    parser.add_argument("--eval-seed", type=int, default=104, help="seed of the eval set")
    parser.add_argument("--cache", type=Path, default=Path("work/bench_labels"))
    parser.add_argument("--verbose", action="store_true", help="print every clip")
    args = parser.parse_args(argv)
    if args.clips < 24:
        parser.error("--clips must be at least 24 (the issue's minimum)")
    import essentia

    essentia.log.infoActive = False
    specs, paths = clip_set(args.set, args.clips, args.cache, args.eval_seed)
    audio_seconds = CLIP_SECONDS * len(specs)
    print(f"set {args.set}: {len(specs)} clips x {CLIP_SECONDS:.0f} s rendered with fluidsynth")
    rows = []
    for name, method in METHODS.items():
        method(paths[0])  # warm-up: imports, caches
        key_total, hits1, hits2, cpu = 0.0, 0, 0, 0.0
        confident, confident_hits = 0, 0
        for spec, path in zip(specs, paths, strict=False):
            start = time.process_time()
            tonic, mode, bpm = method(path)
            cpu += time.process_time() - start
            score = mirex_key_score(spec.key, spec.mode, tonic, mode)
            key_total += score
            hits1 += acc1(spec.bpm, bpm)
            hits2 += acc2(spec.bpm, bpm)
            if method is ours:
                sure = confident_tempo(path)
                confident += sure is not None
                confident_hits += sure is not None and acc1(spec.bpm, sure)
            if args.verbose and (score < 1 or not acc1(spec.bpm, bpm)):
                print(f"  {name[:10]} {spec.name}: key {tonic} {mode} ({score}), bpm {bpm}")
        if method is ours:
            print(
                f"ours: tempo confident enough for the description on {confident}/{len(specs)}"
                f" clips, Acc1 there {confident_hits}/{confident}"
            )
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
