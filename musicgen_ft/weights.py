"""Where model weights come from: a local models dir, the Hugging Face cache, or a download.

`musicgen-ft download-weights NAME...` fetches what a job needs (base models, T5, Demucs,
Essentia taggers) and verifies every file's SHA-256: against the table below where it pins one,
otherwise against the checksum the hub publishes for the file (Git LFS `sha256`). Offline
(`HF_HUB_OFFLINE=1`, or no network) nothing is fetched: jobs check up front and fail at once
with the list of missing files and the command that gets them.

Search order for a base model `V`: `$MUSICGEN_FT_MODELS/V/` (a plain folder holding
`state_dict.bin` and `compression_state_dict.bin`, e.g. copied from another machine), then the
Hugging Face cache (`$HF_HOME`, `$HF_HUB_CACHE`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from musicgen_ft.clirun import run_cli
from musicgen_ft.constants import env_flag
from musicgen_ft.errors import FineTuneError, WeightsMissingError
from musicgen_ft.paths import models_dir
from musicgen_ft.variants import COMPRESSION_FILE, LM_FILE, VARIANTS, Variant


def offline() -> bool:
    return env_flag("HF_HUB_OFFLINE")


@dataclass(frozen=True)
class Asset:
    """A set of files one feature needs.

    Attributes:
        name: What `download-weights` takes.
        source: "hf" (Hugging Face repo) or "url" (plain HTTPS files).
        location: Repo id for "hf"; base URL for "url".
        files: File names inside the repo / under the URL.
        sha256: Pinned checksums by file name (verified when present).
        dest: For "url" assets, the folder (relative to the models dir) they are saved in.
        used_for: One line for the help text.
    """

    name: str
    source: str
    location: str
    files: tuple[str, ...]
    sha256: dict[str, str] = field(default_factory=dict)
    dest: str = ""
    used_for: str = ""


def _musicgen_asset(variant: Variant) -> Asset:
    assert variant.hf_repo is not None
    return Asset(
        name=variant.name,
        source="hf",
        location=variant.hf_repo,
        files=(LM_FILE, COMPRESSION_FILE),
        used_for=f"MusicGen {variant.name} base model",
    )


_EFFNET = "feature-extractors/discogs-effnet/discogs-effnet-bsdynamic-1"
_MOODS = "classification-heads/mtg_jamendo_moodtheme/mtg_jamendo_moodtheme-discogs-effnet-1"
_INSTRUMENTS = "classification-heads/mtg_jamendo_instrument/mtg_jamendo_instrument-discogs-effnet-1"
# Essentia's ONNX taggers and their class lists (see the Essentia block of ASSETS below).
_ESSENTIA_SHA256 = {
    f"{_EFFNET}.onnx": "a280825b334797cf677939db8cd5762c0392aedd0ca6415dbc1cd083f045e43c",
    f"{_EFFNET}.json": "a2e85b2e7372d5f8e0f35bdd6aeae1139f101087d183d0b2fb60b0ea0f01a0ff",
    f"{_MOODS}.onnx": "7d6270acaa5f4bba4b115a0d6849aca05ed6bd153dcb6d9da4f6ab9f99ef10ff",
    f"{_MOODS}.json": "d62cd90263e4d613fa7fcce7a831e339450394794af63685f96e065c1a896ab0",
    f"{_INSTRUMENTS}.onnx": "9ae2d9e763d66bd8eed654d1ac3aa171e6539cb8a0e11f3dcd53df1428980802",
    f"{_INSTRUMENTS}.json": "7d02204c6451b5615e2968ec6364bbae3b915c886e608f05f00d3a38dc5177c4",
}


ASSETS: dict[str, Asset] = {
    **{v.name: _musicgen_asset(v) for v in VARIANTS.values() if v.hf_repo},
    "t5-base": Asset(
        name="t5-base",
        source="hf",
        location="t5-base",
        files=("config.json", "spiece.model", "tokenizer.json", "model.safetensors"),
        used_for="text encoder of every released MusicGen",
    ),
    # --- Demucs (vocal removal; melody conditioning) -------------------------------------
    # Owned by preprocessing/ (issue 3). Demucs's public checkpoint, saved to
    # $MUSICGEN_FT_MODELS/demucs/, where preprocessing.vocals looks first (then the torch hub
    # cache). Demucs names its files `<sig>-<first 8 hex of their SHA-256>.th` and checks that
    # prefix itself when it loads them; `_verify` checks the same prefix here.
    "htdemucs": Asset(
        name="htdemucs",
        source="url",
        location="https://dl.fbaipublicfiles.com/demucs/hybrid_transformer",
        files=("955717e8-8726e21a.th",),
        sha256={"955717e8-8726e21a.th": "8726e21a"},
        dest="demucs",
        used_for="Demucs htdemucs: vocal removal (drop_vocals) and melody conditioning",
    ),
    # --- Essentia taggers (auto-labeling) -------------------------------------------------
    # Owned by labeling/ (issue 4). ONNX releases of Essentia's Discogs-EffNet models, run with
    # onnxruntime (labeling/taggers.py). The .json files carry the class names. Checksums of the
    # files as published at essentia.upf.edu (2023-05-16 uploads), as pinned by several public
    # projects; a mismatch fails the download.
    "essentia": Asset(
        name="essentia",
        source="url",
        location="https://essentia.upf.edu/models/",
        files=tuple(_ESSENTIA_SHA256),
        sha256=_ESSENTIA_SHA256,
        dest="essentia",
        used_for="auto-labels: genres, moods/themes, instruments (CC BY-NC-SA 4.0, MTG-UPF)",
    ),
}


def assets_for_variant(variant: Variant) -> list[str]:
    """Names of the assets a fine-tune of `variant` needs (besides optional stages)."""
    if variant.hf_repo is None:
        return []
    names = [variant.name]
    if variant.text_conditioner:
        names.append(variant.text_conditioner)
    if variant.melody and "htdemucs" in ASSETS:
        names.append("htdemucs")
    return names


# --- resolution ----------------------------------------------------------------------------


def _hf_cached(repo: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename)
    return Path(found) if isinstance(found, str) else None


def resolve_base_model(variant: Variant) -> Path:
    """Return a folder holding the variant's `state_dict.bin` and `compression_state_dict.bin`.

    The `debug` model is built locally on first use. Raises WeightsMissingError naming every
    missing file and how to get it.
    """
    local = models_dir() / variant.name
    if variant.hf_repo is None:
        from training.debug_model import build_debug_model

        return build_debug_model(local, variant.name)
    if (local / LM_FILE).is_file() and (local / COMPRESSION_FILE).is_file():
        return local
    found = [_hf_cached(variant.hf_repo, name) for name in (LM_FILE, COMPRESSION_FILE)]
    if all(found) and found[0] is not None and found[1] is not None:
        if found[0].parent == found[1].parent:
            return found[0].parent
        # Files from different snapshots: join them in one folder of links.
        local.mkdir(parents=True, exist_ok=True)
        for path in found:
            assert path is not None
            link = local / path.name
            if not link.exists():
                link.symlink_to(path.resolve())
        return local
    missing = [
        name for name, path in zip((LM_FILE, COMPRESSION_FILE), found, strict=True) if path is None
    ]
    raise WeightsMissingError(missing_message(variant.name, variant.hf_repo, missing, local))


def check_text_conditioner(variant: Variant) -> None:
    """Fail early when the variant's T5 text encoder is not in the Hugging Face cache."""
    name = variant.text_conditioner
    if not name:
        return
    asset = ASSETS[name]
    missing = [f for f in asset.files if f.endswith(".json") and _hf_cached(name, f) is None]
    if (
        _hf_cached(name, "model.safetensors") is None
        and _hf_cached(name, "pytorch_model.bin") is None
    ):
        missing.append("model.safetensors")
    if missing:
        raise WeightsMissingError(missing_message(name, name, missing, None))


def missing_message(name: str, repo: str, missing: Iterable[str], local: Path | None) -> str:
    where = f" or put them in {local}/" if local else ""
    return (
        f"weights for {name} are not available offline: missing {', '.join(missing)} of "
        f"https://huggingface.co/{repo}; run `musicgen-ft download-weights {name}` on a machine "
        f"with internet (then copy {models_dir()} or the Hugging Face cache){where}"
    )


def ensure_variant_weights(variant: Variant) -> Path:
    """Resolve the base model and its text encoder, downloading them when online."""
    try:
        path = resolve_base_model(variant)
        check_text_conditioner(variant)
        return path
    except WeightsMissingError:
        if offline():
            raise
    download(assets_for_variant(variant))
    path = resolve_base_model(variant)
    check_text_conditioner(variant)
    return path


# --- download ------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hub_checksums(repo: str) -> dict[str, str]:
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo, files_metadata=True)
    out: dict[str, str] = {}
    for sibling in info.siblings or []:
        lfs = getattr(sibling, "lfs", None)
        sha = getattr(lfs, "sha256", None) if lfs is not None else None
        if sha:
            out[sibling.rfilename] = sha
    return out


def _download_hf(asset: Asset) -> list[Path]:
    from huggingface_hub import hf_hub_download

    expected = dict(_hub_checksums(asset.location))
    expected.update(asset.sha256)
    paths = []
    for name in asset.files:
        path = Path(hf_hub_download(asset.location, name))
        _verify(path, expected.get(name), f"{asset.location}/{name}")
        paths.append(path)
    return paths


_ASSET_MAX_BYTES = 20 * 1000**3
_FULL_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _download_url(asset: Asset) -> list[Path]:
    """Download a "url" asset's files through the guarded downloader, verifying each.

    Asset locations are this program's own table, not user input: private hosts (an internal
    mirror, a test server on 127.0.0.1) are admitted, plain http only to those.
    """
    from musicgen_ft import net

    dest = models_dir() / (asset.dest or asset.name)
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in asset.files:
        target = dest / name
        url = f"{asset.location.rstrip('/')}/{name}"
        expected = asset.sha256.get(name)
        if not target.exists():
            full = expected if expected and _FULL_SHA256.fullmatch(expected) else None
            net.download(
                url,
                target,
                max_bytes=_ASSET_MAX_BYTES,
                sha256=full,
                allow_private=True,
                field=asset.name,
            )
            if full is None:  # a prefix pin (Demucs) or none: `_verify` decides
                try:
                    _verify(target, expected, url)
                except FineTuneError:
                    target.unlink(missing_ok=True)
                    raise
        else:
            _verify(target, expected, url)
        paths.append(target)
    return paths


def _verify(path: Path, expected: str | None, label: str) -> None:
    if expected is None:
        raise FineTuneError(f"{label}: no published checksum to verify against; refusing it")
    actual = sha256_of(path)
    if not actual.startswith(expected) and actual != expected:
        path.unlink(missing_ok=True)
        raise FineTuneError(f"{label}: SHA-256 {actual} does not match the expected {expected}")


def download(names: Iterable[str]) -> list[Path]:
    """Download and verify the named assets. Raises FineTuneError with the reason."""
    paths: list[Path] = []
    for name in names:
        if name not in ASSETS:
            raise FineTuneError(f"unknown asset {name!r}; choose from {', '.join(ASSETS)}")
        asset = ASSETS[name]
        if offline():
            raise WeightsMissingError(
                f"{name}: HF_HUB_OFFLINE is set; unset it to download, or copy the files in"
            )
        try:
            fetched = _download_hf(asset) if asset.source == "hf" else _download_url(asset)
        except FineTuneError:
            raise
        except Exception as exc:  # network and hub errors of many kinds
            raise WeightsMissingError(
                f"{name}: download from {asset.location} failed ({type(exc).__name__}: {exc})"
            ) from None
        paths += fetched
        record = models_dir() / "checksums.json"
        known = json.loads(record.read_text()) if record.exists() else {}
        known.update({str(p): sha256_of(p) for p in fetched})
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(known, indent=2, sort_keys=True))
    return paths


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="musicgen-ft download-weights",
        description="Download model weights with checksums. Assets: "
        + "; ".join(f"{a.name} ({a.used_for})" for a in ASSETS.values()),
    )
    parser.add_argument("names", nargs="*", help="assets or model versions (e.g. small)")
    parser.add_argument("--all", action="store_true", help="every asset")
    args = parser.parse_args(argv)
    names: list[str] = list(ASSETS) if args.all else []
    for name in args.names:
        names += assets_for_variant(VARIANTS[name]) if name in VARIANTS else [name]
    if not names:
        parser.error("name at least one asset or model version, or --all")
    return run_cli(lambda: _print_all(download(dict.fromkeys(names))), prog="download-weights")


def _print_all(paths: list[Path]) -> None:
    for path in paths:
        print(path)
