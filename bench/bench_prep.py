"""Data-preparation throughput: `python -m preprocessing` against the incumbent's way.

Both run in the same invocation, alternately, on the same files:

- incumbent: pydub (ffmpeg) decode, resample to the variant's rate (and channels), 30 s slices
  exported as WAV, one file after another, in this process (its interpreter start-up is not
  counted, which favours it);
- ours: the whole `python -m preprocessing DIR --model_version V --output_dir OUT
  --drop_vocals false` command as a subprocess, start-up included: decode, resample, loudness
  normalization, silence and duplicate checks, chunking, WAV writing, content hash and cache
  entry (a fresh cache dir each run, so nothing is reused).

No real music ships with the project: the benchmark set is ~40 minutes of synthesized
music-like audio (chords, bass, kick, hi-hat; 44.1 kHz stereo Ogg Vorbis), generated once into
`--data` (default `~/.cache/musicgen-ft/bench/prep_ogg`).

    .venv/bin/python bench/bench_prep.py [--model_version small] [--repeat 3]

Prints both real-time factors (audio seconds per wall second) and their ratio.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

DEFAULT_DATA = Path.home() / ".cache" / "musicgen-ft" / "bench" / "prep_ogg"
FILES = 10
FILE_SECONDS = 240.0  # 10 x 4 min = 40 min


def _make_one(args: tuple[Path, int]) -> Path:
    from audio_fixtures import music, write_audio

    path, seed = args
    seconds = FILE_SECONDS + 7.0 * seed  # uneven lengths, as in real albums
    return write_audio(path, music(seconds, seed=seed))


def ensure_data(folder: Path) -> list[Path]:
    wanted = [folder / f"track{i:02d}.ogg" for i in range(FILES)]
    missing = [(p, i) for i, p in enumerate(wanted) if not p.is_file()]
    if missing:
        print(f"generating {len(missing)} synthetic ogg files in {folder} ...", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(_make_one, missing))
    return wanted


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for children (ffmpeg, the preparation run)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def audio_seconds(files: list[Path]) -> float:
    import soundfile as sf

    return sum(sf.info(str(p)).duration for p in files)


def incumbent(files: list[Path], out: Path, rate: int, channels: int) -> int:
    """The incumbent's loop: pydub decode (ffmpeg), resample, 30 s WAV slices."""
    from pydub import AudioSegment

    written = 0
    for path in files:
        audio = AudioSegment.from_file(str(path))
        audio = audio.set_frame_rate(rate).set_channels(channels)
        for k, start in enumerate(range(0, len(audio), 30_000)):
            audio[start : start + 30_000].export(str(out / f"{path.stem}_{k}.wav"), format="wav")
            written += 1
    return written


def ours(data: Path, out: Path, model_version: str) -> float:
    started = time.perf_counter()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "preprocessing",
            str(data),
            "--model_version",
            model_version,
            "--output_dir",
            str(out),
            "--drop_vocals",
            "false",
            "--cache_dir",
            str(out / "cache"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if run.returncode != 0:
        tail = run.stderr[-2000:]
        raise SystemExit(f"python -m preprocessing failed ({run.returncode}):\n{tail}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model_version", default="small")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from musicgen_ft.variants import get_variant

    variant = get_variant(args.model_version)
    files = ensure_data(args.data)
    seconds = audio_seconds(files)
    print(
        f"{len(files)} files, {seconds / 60:.1f} min of 44.1 kHz stereo ogg; target "
        f"{variant.sample_rate} Hz x {variant.channels} ch ({variant.name}); "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    inc_times: list[float] = []
    our_times: list[float] = []
    inc_cpu: list[float] = []
    our_cpu: list[float] = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-prep-") as tmp:
            out = Path(tmp)
            cpu, started = cpu_seconds(), time.perf_counter()
            incumbent(files, out, variant.sample_rate, variant.channels)
            inc_times.append(time.perf_counter() - started)
            inc_cpu.append(cpu_seconds() - cpu)
            shutil.rmtree(out)
            out.mkdir()
            cpu = cpu_seconds()
            our_times.append(ours(args.data, out / "ours", variant.name))
            our_cpu.append(cpu_seconds() - cpu)
        print(
            f"  incumbent {inc_times[-1]:6.2f} s ({inc_cpu[-1]:5.1f} CPU s)   "
            f"ours {our_times[-1]:6.2f} s ({our_cpu[-1]:5.1f} CPU s)",
            flush=True,
        )
    inc, our = statistics.median(inc_times), statistics.median(our_times)
    print(
        f"incumbent (pydub decode + resample + 30 s wav slices): {inc:.2f} s, "
        f"RTF {seconds / inc:.0f}x, {statistics.median(inc_cpu):.1f} CPU s"
    )
    print(
        f"ours (python -m preprocessing, start-up included):    {our:.2f} s, "
        f"RTF {seconds / our:.0f}x, {statistics.median(our_cpu):.1f} CPU s"
    )
    print(
        f"ratio: {inc / our:.2f}x wall (median of {args.repeat}; target >= 1.5x), "
        f"{statistics.median(inc_cpu) / statistics.median(our_cpu):.2f}x CPU; "
        f"load after {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
