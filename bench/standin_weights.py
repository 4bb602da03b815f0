"""Stand-in weights for a benchmark job: random init, in the released formats, at real size.

Builds, under `--root`, what a user's machine holds after `musicgen-ft download-weights VARIANT`,
the way tests/test_rehearsal.py does with tiny ones (the builders are tests/hub_standins.py's,
with `size="real"`):

- `hub/t5-base/`: t5-base's encoder shape in the Hugging Face layout, served by
  tests/hub_server.py (a local stand-in of the hub's file API, reached through `HF_ENDPOINT`);
- `hub/facebook/musicgen-VARIANT/`: `state_dict.bin` (the variant's full LM, its `xp.cfg` using
  the released conditioners) and `compression_state_dict.bin` (the released EnCodec shape),
  built with AudioCraft's builders once t5-base is in a build cache;
- Demucs htdemucs (~42 M parameters, Demucs's own format) where a user's pre-filled caches hold
  it (torch hub's cache, `$MUSICGEN_FT_MODELS/demucs/`), and the Essentia taggers' ONNX
  stand-ins (tests/labeling_standins.py, small) in `$MUSICGEN_FT_MODELS/essentia/`: their
  pinned checksums cannot match a stand-in, so they are not downloaded (as in the rehearsal);
- then `musicgen-ft download-weights VARIANT` through the hub into the user's empty caches
  (`user/`), verifying every file as a real download does.

Writes `ROOT/env.json` (the variables a job needs: HF_HOME, HF_HUB_CACHE, MUSICGEN_FT_MODELS,
MUSICGEN_FT_CACHE, TORCH_HOME, HF_HUB_OFFLINE=1) and `ROOT/standins.json` (wall time and size
of each step).

    python bench/standin_weights.py --root /tmp/standins --variant small [--size tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    files = [p for p in files if not p.is_symlink()]  # HF snapshots link to their blobs
    return round(sum(p.stat().st_size for p in files) / 1e6, 1)


def _fetch(
    names: list[str], env: dict[str, str], timeout: float, steps: dict[str, Any], label: str
) -> bool:
    """`musicgen-ft download-weights NAMES` through the local hub; False (noted) on failure."""
    try:
        _run(["-m", "musicgen_ft.cli", "download-weights", *names], env, timeout)
        return True
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"standins: download of {label} failed; placing the files in the HF cache layout "
              f"instead:\n{exc}", flush=True)  # fmt: skip
        steps[f"download failed: {label}"] = {"error": str(exc)[-2000:]}
        return False


def _run(args: list[str], env: dict[str, str], timeout: float) -> None:
    got = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if got.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed:\n{got.stderr[-3000:]}")


def place_in_hf_cache(repo_dir: Path, cache: Path, repo_id: str) -> Path:
    """The files of `repo_dir` as the Hugging Face cache lays out a download of `repo_id` at
    tests/hub_server.py's commit (`models--ORG--NAME/{refs/main, snapshots/COMMIT/...}`): the
    fallback when a download through the local hub fails (another huggingface_hub version)."""
    from hub_server import COMMIT

    base = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = base / "snapshots" / COMMIT
    for path in sorted(repo_dir.rglob("*")):
        if path.is_file():
            target = snapshot / path.relative_to(repo_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copyfile(path, target)
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(COMMIT)
    return snapshot


def build(root: Path, variant: str, size: str, timeout: float = 900) -> dict[str, Any]:
    from hub_server import HubServer
    from hub_standins import htdemucs, tiny_t5

    from musicgen_ft.weights import ASSETS

    root.mkdir(parents=True, exist_ok=True)
    hub, home = root / "hub", root / "user"
    steps: dict[str, dict[str, Any]] = {}

    def timed(name: str, path: Path | None = None) -> Any:
        class _Step:
            def __enter__(self) -> None:
                self.start = time.perf_counter()
                print(f"standins: {name} ...", flush=True)

            def __exit__(self, *exc: object) -> None:
                entry: dict[str, Any] = {"seconds": round(time.perf_counter() - self.start, 2)}
                if exc[0] is not None:
                    entry["error"] = f"{getattr(exc[0], '__name__', 'error')}: {exc[1]}"[-2000:]
                if path is not None and path.exists():
                    entry["mb"] = _size_mb(path)
                steps[name] = entry
                print(f"standins: {name} {entry}", flush=True)

        return _Step()

    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(home / "hf"),
        "HF_HUB_CACHE": str(home / "hf" / "hub"),
        "MUSICGEN_FT_MODELS": str(home / "models"),
        "MUSICGEN_FT_CACHE": str(home / "cache"),
        "TORCH_HOME": str(home / "torch"),
    }
    with timed("t5-base", hub / "t5-base"):
        if not (hub / "t5-base" / "model.safetensors").is_file():
            tiny_t5(hub / "t5-base", size)
    server = HubServer(hub)
    try:
        online = {**env, "HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": "0"}
        build_hf = str(root / "build-hf")
        build_env = {
            **online,
            "HF_HOME": build_hf,
            "HF_HUB_CACHE": build_hf,
            "MUSICGEN_FT_MODELS": str(root / "build-models"),
        }
        with timed("t5-base into the build cache"):
            fetched = _fetch(["t5-base"], build_env, timeout, steps, "t5-base (build)")
            if not fetched:
                place_in_hf_cache(hub / "t5-base", Path(build_hf), "t5-base")
        target = hub / "facebook" / f"musicgen-{variant}"
        with timed(f"musicgen-{variant}", target):
            if not (target / "state_dict.bin").is_file():
                _run(
                    ["tests/hub_standins.py", "musicgen", str(target), variant, size],
                    {**build_env, "HF_HUB_OFFLINE": "1"},
                    timeout,
                )
        demucs_dir = root / "demucs"
        with timed("htdemucs", demucs_dir):
            found = sorted(demucs_dir.glob("955717e8-*.th"))
            weights = found[0] if found else htdemucs(demucs_dir, size=size)
            hub_ckpt = home / "torch" / "hub" / "checkpoints" / "955717e8-8726e21a.th"
            ours = home / "models" / "demucs" / weights.name
            for place in (hub_ckpt, ours):
                place.parent.mkdir(parents=True, exist_ok=True)
                if not place.exists():
                    shutil.copyfile(weights, place)
        with timed("essentia taggers (small ONNX stand-ins)"):
            from labeling_standins import build_all

            taggers = build_all(root / "taggers")
            for rel in ASSETS["essentia"].files:
                place = home / "models" / "essentia" / rel
                place.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(next(taggers.rglob(Path(rel).name)), place)
        with timed(f"download-weights {variant}", home / "hf"):
            if not _fetch([variant], online, timeout, steps, variant):
                for repo in (f"facebook/musicgen-{variant}", "t5-base"):
                    place_in_hf_cache(hub / repo, home / "hf" / "hub", repo)
    finally:
        server.close()
    job_env = {
        k: env[k]
        for k in (
            "HF_HUB_OFFLINE",
            "HF_HOME",
            "HF_HUB_CACHE",
            "MUSICGEN_FT_MODELS",
            "MUSICGEN_FT_CACHE",
            "TORCH_HOME",
        )
    }
    (root / "env.json").write_text(json.dumps(job_env, indent=1))
    report = {"variant": variant, "size": size, "steps": steps, "env": job_env}
    (root / "standins.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--variant", default="small")
    p.add_argument("--size", default="real", choices=("real", "tiny"))
    args = p.parse_args(argv)
    os.environ.setdefault("USER", "bench")
    report = build(args.root.resolve(), args.variant, args.size)
    print(json.dumps(report["steps"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
