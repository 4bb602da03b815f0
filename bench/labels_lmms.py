"""Tempo on music nobody here wrote: the demo songs Debian ships with LMMS (evaluation only).

    MUSICGEN_FT_BENCH=1 scripts/setup.sh           # installs lmms (Debian package) among others
    .venv/bin/python bench/labels_lmms.py [--cache work/bench_labels] [--verbose]

The set: every project under /usr/share/lmms/projects/demos and /shorties (Debian's `lmms-common`,
DFSG-free), songs made by LMMS users in their own genres and arrangements (reggae, reggaeton,
house, trance, chiptune, drum and bass, hip hop ...). Ground truth is the tempo each project
file states (`<head bpm=...>`, quarter notes a minute, as everywhere in this benchmark); a
project whose tempo is automated would have no single truth and is left out (the script checks
for a `<bpm>` model with an automation id). Key is not scored: the projects do not state one.

Each project is rendered once with `lmms render` (44.1 kHz WAV, cached), cut into the 30 s
chunks the product labels (from the start, every 30 s, the last partial one dropped), and
chunks quieter than -45 dBFS RMS (silent intros and tails) are skipped. Scored: Acc1 / Acc2 over
chunks and the mean over songs (each song weighted once), for Essentia's defaults, the incumbent
and ours, and how often the tempo ours writes into a description (confidence >= the stage's
threshold) is right. Nothing was fitted or chosen on these songs: the rule is the one in
labeling/analysis.py, frozen before this script was first run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from labels_methods import essentia_defaults, incumbent, ours, written_tempi  # noqa: E402
from labels_metrics import acc1, acc2  # noqa: E402

PROJECTS = Path("/usr/share/lmms/projects")
FOLDERS = ("demos", "shorties")
CHUNK_S = 30.0
SILENT_DBFS = -45.0
METHODS = {
    "incumbent (librosa beat_track)": incumbent,
    "Essentia defaults (RhythmExtractor2013)": essentia_defaults,
    "ours (labeling.analysis)": ours,
}


def project_xml(path: Path) -> str:
    """The project's XML: `.mmpz` is Qt's qCompress (a 4-byte length, then zlib)."""
    raw = path.read_bytes()
    data = zlib.decompress(raw[4:]) if path.suffix == ".mmpz" else raw
    return data.decode("utf-8", "replace")


def stated_tempo(xml: str) -> float | None:
    """The project's tempo, or None when it is missing or automated."""
    head = re.search(r"<head\b[^>]*>", xml)
    bpm = re.search(r'\bbpm="([0-9.]+)"', head.group(0)) if head else None
    if bpm is None or re.search(r"<bpm\b[^>]*\bid=", xml):
        return None
    return float(bpm.group(1))


def render(project: Path, out: Path) -> Path:
    if out.is_file():
        return out
    lmms = shutil.which("lmms")
    if lmms is None:
        raise SystemExit("lmms is not installed: run MUSICGEN_FT_BENCH=1 scripts/setup.sh")
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [lmms, *(["--allowroot"] if os.geteuid() == 0 else []), "render", str(project)]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    subprocess.run([*cmd, "-f", "wav", "-o", str(out)], check=True, env=env, capture_output=True)
    return out


def chunks(song: Path, folder: Path) -> list[Path]:
    """The song's 30 s chunks as WAV files (cached), silent ones left out."""
    import soundfile as sf

    audio, rate = sf.read(str(song), dtype="float32", always_2d=True)
    size = int(CHUNK_S * rate)
    out = []
    for i in range(audio.shape[0] // size):
        piece = audio[i * size : (i + 1) * size]
        rms = float(np.sqrt(np.mean(piece.astype(np.float64) ** 2)))
        if 20 * np.log10(max(rms, 1e-12)) < SILENT_DBFS:
            continue
        target = folder / f"{song.stem}_{i:02d}.wav"
        if not target.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            sf.write(str(target), piece, rate, subtype="PCM_16")
        out.append(target)
    return out


def songs(cache: Path) -> tuple[list[tuple[str, str, float, list[Path]]], list[str]]:
    """Every usable project as (folder, name, stated bpm, its chunks), rendered and cut (cached),
    and the projects left out for having no single stated tempo."""
    root = cache / "lmms"
    found, left_out = [], []
    for folder in FOLDERS:
        for project in sorted((PROJECTS / folder).rglob("*.mmp*")):
            bpm = stated_tempo(project_xml(project))
            if bpm is None:
                left_out.append(project.name)
                continue
            wav = render(project, root / "songs" / f"{project.stem}.wav")
            found.append((folder, project.stem, bpm, chunks(wav, root / "chunks")))
    return found, left_out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("work/bench_labels"))
    parser.add_argument("--verbose", action="store_true", help="print every miss")
    args = parser.parse_args()
    import essentia

    essentia.log.infoActive = False
    found, left_out = songs(args.cache)
    for name in left_out:
        print(f"left out (no single stated tempo): {name}")
    sets = [(name, bpm, paths) for _, name, bpm, paths in found]
    n_chunks = sum(len(c) for _, _, c in sets)
    print(
        f"{len(sets)} songs, {n_chunks} chunks of {CHUNK_S:.0f} s;"
        f" tempi {sorted(b for _, b, _ in sets)}"
    )
    print(f"\n{'method':42s} {'Acc1':>6s} {'Acc2':>6s} {'song Acc1':>10s} {'song Acc2':>10s}")
    for name, method in METHODS.items():
        hits1 = hits2 = 0
        song1, song2 = [], []
        for _, bpm, paths in sets:
            s1 = s2 = 0
            for path in paths:
                guess = method(path)[2]
                s1 += acc1(bpm, guess)
                s2 += acc2(bpm, guess)
                if args.verbose and not acc1(bpm, guess):
                    print(f"  {name[:12]} {path.stem}: {bpm:g} -> {guess}")
            hits1, hits2 = hits1 + s1, hits2 + s2
            if paths:
                song1.append(s1 / len(paths))
                song2.append(s2 / len(paths))
        print(
            f"{name:42s} {hits1 / n_chunks:6.3f} {hits2 / n_chunks:6.3f}"
            f" {np.mean(song1):10.3f} {np.mean(song2):10.3f}"
        )
    written, right = written_tempi((bpm, path) for _, bpm, paths in sets for path in paths)
    print(f"\nours, written into descriptions: {written} of {n_chunks} chunks, {right} right")
    return 0


if __name__ == "__main__":
    sys.exit(main())
