"""TempoCNN with its released weights on the tempo development clips (issue 13, item 1).

    .venv/bin/python bench/labels_tempocnn.py [--cache work/bench_labels]
    .venv/bin/python bench/labels_tempo3_select.py --cnn     # the CNN as one more feature

Where the weights come from: Schreiber's TempoCNN models (the networks Essentia's `TempoCNN`
wraps, there as TensorFlow graphs) ship as Keras `.h5` files inside the `tempocnn` wheel on
PyPI, which this machine can reach. The script fetches that wheel with pip (pinned version and
checksum), reads three of its models with Keras 3 on the torch backend (TensorFlow is not
needed, and the `tempocnn` package itself, AGPL-3.0 like its models, is never imported or
installed), and computes the input as the models were trained on: 11025 Hz mono, a 1024-point
STFT with hop 512, 40 mel bands over 20-5000 Hz (magnitude), windows of 256 frames (11.9 s) every
128 frames, each window standardised (deeptemp, deepsquare) or divided by its maximum (fcn). The
window outputs (256 classes, 30-285 BPM) are averaged. Prints Acc1 / Acc2 of the arg-max per
development part and caches each clip's averaged distribution under
`<cache>/tempocnn/<part>_<model>.npz` for `labels_tempo3_select.py --cnn`.

Keras and h5py are bench-only: the first run installs them (pinned below) into
`work/tempocnn/site`, outside the project's environment.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ["KERAS_BACKEND"] = "torch"
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from labels_metrics import acc1, acc2  # noqa: E402

WHEEL = "tempocnn-0.0.8-py3-none-any.whl"
WHEEL_SHA256 = "73ef63eecf1c783789c222882aeb286302083f2ef8dc2aeb37588156afc059b5"
MODELS = {  # model -> sha256 of its .h5 in that wheel
    "fcn": "ac1435c007eaf7c3d9439b074424d72882986455628ec0698b8d4b61142fb12d",
    "deepsquare_k8": "9cec7bb73156ff06ad503e203dea425d4dbbbf7029b3453ff2671d767a8d74a9",
    "deeptemp_k8": "65bd692fbb3699643d8567012887eb31f7d27be5f71f5bca60ad073dfed5ef8d",
}
# Keras 3.15.1 reads Keras 2 .h5 files on the torch backend; h5py for the file. Bench only.
BENCH_PACKAGES = ("keras==3.15.1", "h5py==3.16.0")
# Keras's own dependencies, pinned to what was tested (numpy, packaging, pygments and
# typing-extensions come from the project's environment).
KERAS_DEPS = (
    "absl-py==2.5.1",
    "namex==0.1.0",
    "optree==0.20.0",
    "ml-dtypes==0.7.0",
    "rich==15.0.0",
    "markdown-it-py==4.3.0",
    "mdurl==0.1.2",
)
SR, N_FFT, HOP, BANDS, FRAMES, STEP = 11025, 1024, 512, 40, 256, 128
SEEN_EVAL_SEEDS = tuple(range(101, 112))  # evaluation-generator seeds already looked at


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_models(root: Path) -> dict[str, Path]:
    """The three models' .h5 files, from the pinned wheel (downloaded once with pip)."""
    wheel = root / WHEEL
    if not wheel.is_file():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "tempocnn==0.0.8",
                "-d",
                str(root),
            ],
            check=True,
        )
    if _sha256(wheel) != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: checksum differs from the pinned one; delete it and rerun")
    out = {}
    with zipfile.ZipFile(wheel) as archive:
        for name, digest in MODELS.items():
            target = root / "models" / f"{name}.h5"
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(f"tempocnn/models/{name}.h5"))
            if _sha256(target) != digest:
                raise SystemExit(f"{target}: checksum differs from the wheel's; delete it")
            out[name] = target
    return out


def import_keras(root: Path):  # type: ignore[no-untyped-def]
    site = root / "site"
    if not (site / "keras").is_dir():
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site)]
        subprocess.run([*cmd, *BENCH_PACKAGES, *KERAS_DEPS], check=True)
    sys.path.insert(0, str(site))
    import keras

    return keras


def mel_windows(path: Path) -> np.ndarray:
    """(windows, 40, 256, 1) magnitude mel windows of a file, zero-padded to one window."""
    import librosa
    import soundfile as sf
    import soxr

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = soxr.resample(audio.mean(axis=1), rate, SR)
    mel = librosa.feature.melspectrogram(
        y=mono, sr=SR, n_fft=N_FFT, hop_length=HOP, power=1, n_mels=BANDS, fmin=20, fmax=5000
    )
    if mel.shape[1] < FRAMES:
        mel = np.pad(mel, ((0, 0), (0, FRAMES - mel.shape[1])))
    starts = range(0, mel.shape[1] - FRAMES + 1, STEP)
    return np.stack([mel[:, s : s + FRAMES] for s in starts])[..., None]


def normalise(name: str, windows: np.ndarray) -> np.ndarray:
    x = windows.astype(np.float64)
    if name == "fcn":
        return (x / max(float(x.max()), 1e-12)).astype(np.float32)
    std = float(x.std())
    return ((x - x.mean()) / std if std > 0 else x).astype(np.float32)


def parts(cache: Path) -> dict[str, list[tuple[str, float, Path]]]:
    import labels_eval_midi
    from labels_tempo3_cache import parts as dev_parts

    out = dev_parts(cache)
    for seed in SEEN_EVAL_SEEDS:
        if f"eval{seed}" not in out:
            out[f"eval{seed}"] = [
                (s.name, s.bpm, labels_eval_midi.render(s, cache / f"eval{seed}"))
                for s in labels_eval_midi.eval_specs(4, seed)
            ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("work/bench_labels"))
    parser.add_argument("--root", type=Path, default=Path("work/tempocnn"))
    args = parser.parse_args()
    files = fetch_models(args.root)
    keras = import_keras(args.root)
    import torch

    torch.set_num_threads(1)
    models = {n: keras.saving.load_model(str(p), compile=False) for n, p in files.items()}
    store = args.cache / "tempocnn"
    store.mkdir(parents=True, exist_ok=True)
    print(f"{'part':10s} " + " ".join(f"{n + ' Acc1/Acc2':>24s}" for n in models) + "  x real time")
    for part, clips in parts(args.cache).items():
        dists: dict[str, dict[str, np.ndarray]] = {n: {} for n in models}
        hits = {n: [0, 0] for n in models}
        cpu = 0.0
        for name, bpm, path in clips:
            start = time.process_time()
            windows = mel_windows(path)
            for model_name, model in models.items():
                p = model.predict(normalise(model_name, windows), verbose=0).mean(axis=0)
                dists[model_name][name] = p
                guess = float(np.argmax(p) + 30)
                hits[model_name][0] += acc1(bpm, guess)
                hits[model_name][1] += acc2(bpm, guess)
            cpu += time.process_time() - start
        for model_name in models:
            np.savez(store / f"{part}_{model_name}.npz", **dists[model_name])  # type: ignore[arg-type]
        n = len(clips)
        cells = " ".join(f"{h[0] / n:>15.3f} / {h[1] / n:.3f}" for h in hits.values())
        print(f"{part:10s} {cells}  {30.0 * n / cpu:.0f}x (all three)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
