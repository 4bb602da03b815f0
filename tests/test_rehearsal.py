"""The README quick start, as written, against a local stand-in of the model hub.

A fresh user machine: empty caches, a hub (tests/hub_server.py on 127.0.0.1, reached through
`HF_ENDPOINT`) serving tiny stand-ins in the released formats and repository layouts
(tests/hub_standins.py): `t5-base` with its git-kept small files, `facebook/musicgen-*` whose
`xp.cfg` uses the released conditioners (T5 named `t5-base`; chroma for melody). Demucs and the
Essentia taggers cannot match their pinned checksums as stand-ins, so they sit where a user's
pre-filled caches would be (torch hub's cache, the models dir); tests/test_hub_downloads.py
proves that a mismatched download of them is refused.

Then, exactly as the README says: `musicgen-ft download-weights VARIANT`; `train.py` with only
`--dataset_path` and short-run flags (vocals removed and labels on by default; the default
variant is stereo-melody); `predict.py` (with a melody for melody variants), all offline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hub_server import HubServer

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
# Mono, stereo, melody and stereo-melody (the default).
VARIANTS = ("small", "stereo-small", "melody", "stereo-melody")
SHORT_RUN = ["--epochs", "1", "--updates_per_epoch", "2", "--batch_size", "2",
             "--optimizer", "adamw", "--lr", "1e-3", "--sample_prompts", "1",
             "--sample_duration", "1"]  # fmt: skip


def _run(args: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A user's environment (empty caches) and the hub the stand-ins are served from."""
    from audio_fixtures import make_tiny_demucs
    from hub_standins import tiny_clap, tiny_t5
    from labeling_standins import build_all

    from musicgen_ft.weights import ASSETS

    base = tmp_path_factory.mktemp("rehearsal")
    hub_root, home = base / "hub", base / "user"
    tiny_t5(hub_root / "t5-base")
    tiny_clap(hub_root / "laion" / "clap-htsat-unfused", steps=0)  # README's optional extra
    server = HubServer(hub_root)
    env = {
        **os.environ,
        "HF_ENDPOINT": server.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(home / "hf"),
        "HF_HUB_CACHE": str(home / "hf" / "hub"),
        "MUSICGEN_FT_MODELS": str(home / "models"),
        "MUSICGEN_FT_CACHE": str(home / "cache"),
        "TORCH_HOME": str(home / "torch"),
    }
    # Pre-filled caches: Demucs where Demucs keeps it (torch hub, under the published name; our
    # folder, under its signature and own checksum) and the taggers in the models dir.
    sig = make_tiny_demucs(base / "demucs", "tiny")
    [weights] = (base / "demucs").glob(f"{sig}-*.th")
    hub_ckpt = home / "torch" / "hub" / "checkpoints" / "955717e8-8726e21a.th"
    ours = home / "models" / "demucs" / weights.name.replace(sig, "955717e8")
    for target in (hub_ckpt, ours):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, target)
    taggers = build_all(base / "taggers")
    for rel in ASSETS["essentia"].files:
        target = home / "models" / "essentia" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(next(taggers.rglob(Path(rel).name)), target)
    # The MusicGen stand-ins are built with AudioCraft's builders, which load T5 (and Demucs,
    # for chroma) from the caches as AudioCraft does: fetch T5 first, through the hub.
    build_env = {**env, "HF_HOME": str(base / "build-hf"), "HF_HUB_CACHE": str(base / "build-hf")}
    got = _run(["-m", "musicgen_ft.cli", "download-weights", "t5-base"], build_env)
    assert got.returncode == 0, got.stderr[-2000:]
    for name in VARIANTS:
        built = _run(
            ["tests/hub_standins.py", "musicgen", str(hub_root / "facebook" / f"musicgen-{name}"),
             name],
            {**build_env, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
        assert built.returncode == 0, built.stderr[-3000:]
    yield env
    server.close()


@pytest.mark.parametrize("variant", VARIANTS)
def test_readme_quick_start(
    variant: str, user: dict[str, str], example_archive: Path, tmp_path: Path
) -> None:
    extra = ["clap"] if variant == "stereo-melody" else []  # the README's optional CLAP
    got = _run(["-m", "musicgen_ft.cli", "download-weights", variant, *extra], user)
    assert got.returncode == 0, got.stderr[-2000:]
    offline = {**user, "HF_HUB_OFFLINE": "1"}  # everything runs offline after the download
    out = tmp_path / "runs" / "mine"
    args = ["train.py", "--dataset_path", str(example_archive), "--output_dir", str(out)]
    if variant != "stereo-melody":  # the default
        args += ["--model_version", variant]
    trained = _run([*args, *SHORT_RUN], offline)
    assert trained.returncode == 0, trained.stderr[-3000:]
    tar = out / "trained_model.tar"
    assert trained.stdout.strip().splitlines()[-1] == str(tar)
    log = (out / "job.log").read_text()
    assert "[vocals] done" in log and "[labels] done" in log  # the defaults ran every stage
    with tarfile.open(tar) as members:
        report = json.loads(members.extractfile("quality.json").read())  # type: ignore[union-attr]
    assert report["clap"]["available"] is bool(extra), report["clap"]
    if extra:
        assert report["clap"]["text_agreement"]["finetuned"] is not None

    melody = tmp_path / "melody.wav"
    t = np.arange(32000 * 3) / 32000
    sf.write(melody, (0.3 * np.sin(2 * np.pi * 440 * t * (1 + (t > 1.5) * 0.5))), 32000)
    clip = tmp_path / "out.wav"
    args = ["predict.py", "--weights", str(tar), "--prompt", "calm piano", "--duration", "1",
            "--seed", "0", "--output", str(clip)]  # fmt: skip
    if "melody" in variant:
        args += ["--input_audio", str(melody)]
    generated = _run(args, offline)
    assert generated.returncode == 0, generated.stderr[-3000:]
    info = sf.info(str(clip))
    assert info.channels == (2 if variant.startswith("stereo") else 1)
    assert info.frames == 32000 and info.samplerate == 32000
