"""Key and tempo on accompaniment grooves nobody here wrote: MMA's standard library (eval only).

    MUSICGEN_FT_BENCH=1 scripts/setup.sh           # installs mma and fluidsynth among others
    .venv/bin/python bench/labels_mma.py [--seed 201] [--cache work/bench_labels] [--verbose]

The set: one clip per groove file of MMA's standard library (Debian's `mma`,
/usr/share/mma/lib/stdlib): swing, bossa nova, rhumba, tango, polka, march, waltzes, rock,
ballads, blues, country ... written by MMA's authors, each file's first `DefGroove` (its main
groove). Only files in 2, 3 or 4 quarter-note beats a bar (`Time 2|3|4`) are used; files named
for 6/8 (`68`) or notated in eighths (`TimeSig 6 8`: afro-cuban, 6/8 played as three quarters)
and the metronomes are left out, so the tempo is the quarter note MMA's `Tempo`
counts (in the `...128` grooves, 12/8 played as four triplet beats, that is the dotted quarter,
the beat this benchmark counts in compound time). What this script chooses per clip, from the
seed: the tempo (uniform, 70-160 in 4, 90-180 in 3), the key (any of 24, half
minor) and a four-bar progression in it (major: I vi IV V, I IV V I, ii V I I; minor:
i iv V i, i VI iv V, i VII VI V), looped over 32 s; `mma` writes the MIDI, fluidsynth renders it
with FluidR3_GM (the same soundfont as the other sets; the arrangements and instruments are
MMA's). Truth: that tempo; the key the progression is in (MIREX). Nothing was fitted, chosen or
changed on these clips: the rules are the ones in labeling/analysis.py, frozen before this
script was first run.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from labels_methods import essentia_defaults, incumbent, ours, written_tempi  # noqa: E402
from labels_metrics import acc1, acc2, mirex_key_score  # noqa: E402
from labels_midi import render_midi  # noqa: E402

STDLIB = Path("/usr/share/mma/lib/stdlib")
CLIP_S = 30.0
TEMPO_RANGE = {4: (70, 160), 3: (90, 180), 2: (80, 140)}
NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
# (semitones above the tonic, minor?) per degree used below
MAJOR = {"I": (0, False), "ii": (2, True), "IV": (5, False), "V": (7, False), "vi": (9, True)}
MINOR = {"i": (0, True), "iv": (5, True), "V": (7, False), "VI": (8, False), "VII": (10, False)}
PROGRESSIONS = {
    "major": [["I", "vi", "IV", "V"], ["I", "IV", "V", "I"], ["ii", "V", "I", "I"]],
    "minor": [["i", "iv", "V", "i"], ["i", "VI", "iv", "V"], ["i", "VII", "VI", "V"]],
}
METHODS = {
    "incumbent (librosa)": incumbent,
    "Essentia defaults": essentia_defaults,
    "ours (labeling.analysis)": ours,
}


def grooves() -> list[tuple[str, int]]:
    """(main groove, beats a bar) of each usable groove file."""
    out = []
    for path in sorted(STDLIB.glob("*.mma")):
        if "68" in path.stem or path.stem.startswith("metronome"):
            continue
        text = path.read_text(errors="replace")
        time = re.search(r"^\s*Time\s+(\d+)", text, re.MULTILINE | re.IGNORECASE)
        groove = re.search(r"^\s*DefGroove\s+(\S+)", text, re.MULTILINE | re.IGNORECASE)
        if time is None or groove is None or int(time.group(1)) not in TEMPO_RANGE:
            continue
        if re.search(r"^\s*TimeSig\s+\d+\s*/?\s*8", text, re.MULTILINE | re.IGNORECASE):
            continue  # 6/8 written as 3 quarters (afro-cuban): MMA's beat is not the dotted quarter
        out.append((groove.group(1), int(time.group(1))))
    return out


def song(groove: str, beats: int, rng: random.Random) -> tuple[str, float, str, str]:
    """The MMA source of one clip, its tempo and its key (tonic, mode)."""
    low, high = TEMPO_RANGE[beats]
    tempo = float(rng.randint(low, high))
    tonic = rng.randrange(12)
    mode = rng.choice(["major", "minor"])
    degrees = MAJOR if mode == "major" else MINOR
    progression = rng.choice(PROGRESSIONS[mode])
    bars = int(np.ceil((CLIP_S + 2) * tempo / 60 / beats)) + 1
    lines = [f"Tempo {tempo:g}", f"Groove {groove}"]
    for bar in range(bars):
        step, minor = degrees[progression[bar % 4]]
        lines.append(f"{bar + 1} {NAMES[(tonic + step) % 12]}{'m' if minor else ''}")
    return "\n".join(lines) + "\n", tempo, NAMES[tonic], mode


def render(source: str, out: Path) -> Path:
    """Render `source` to `out`; a cached render is reused only if it was made from this source
    (its `.mma` is kept next to it), so a changed draw never scores an old clip."""
    mma_file, mid = out.with_suffix(".mma"), out.with_suffix(".mid")
    if out.is_file() and mma_file.is_file() and mma_file.read_text() == source:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    mma_file.write_text(source)
    proc = subprocess.run(["mma", "-f", str(mid), str(mma_file)], capture_output=True, text=True)
    if proc.returncode != 0 or not mid.is_file():
        raise RuntimeError(f"mma failed on {mma_file}: {(proc.stderr or proc.stdout)[-1000:]}")
    return render_midi(mid, out, CLIP_S)


def clips(seed: int, cache: Path) -> list[tuple[str, int, float, str, str, Path]]:
    """The seed's clips as (groove, beats a bar, tempo, tonic, mode, wav), rendered (cached)."""
    rng = random.Random(seed)
    out = []
    for groove, beats in grooves():
        source, tempo, tonic, mode = song(groove, beats, rng)
        wav = render(source, cache / f"mma_{seed}" / f"{groove}.wav")
        out.append((groove, beats, tempo, tonic, mode, wav))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=201)
    parser.add_argument("--cache", type=Path, default=Path("work/bench_labels"))
    parser.add_argument("--verbose", action="store_true", help="print every miss")
    args = parser.parse_args()
    import essentia

    essentia.log.infoActive = False
    chosen = clips(args.seed, args.cache)
    counts = {b: sum(c[1] == b for c in chosen) for b in TEMPO_RANGE}
    print(f"{len(chosen)} clips (beats a bar: {counts}), seed {args.seed}")
    print(f"\n{'method':28s} {'key':>6s} {'Acc1':>6s} {'Acc2':>6s}")
    for name, method in METHODS.items():
        key = hit1 = hit2 = 0.0
        for groove, _, tempo, tonic, mode, path in chosen:
            est_tonic, est_mode, bpm = method(path)
            score = mirex_key_score(tonic, mode, est_tonic, est_mode)
            key, hit1, hit2 = key + score, hit1 + acc1(tempo, bpm), hit2 + acc2(tempo, bpm)
            if args.verbose and (score < 1 or not acc1(tempo, bpm)):
                print(f"  {name[:10]} {groove}: {tonic} {mode} {tempo:g} -> "
                      f"{est_tonic} {est_mode} {bpm}")  # fmt: skip
        n = len(chosen)
        print(f"{name:28s} {key / n:6.3f} {hit1 / n:6.3f} {hit2 / n:6.3f}")
    written, right = written_tempi((tempo, path) for _, _, tempo, _, _, path in chosen)
    print(f"\nours, written into descriptions: {written} of {len(chosen)} clips, {right} right")
    return 0


if __name__ == "__main__":
    sys.exit(main())
