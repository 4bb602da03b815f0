"""Load a base or fine-tuned MusicGen through AudioCraft's own loader.

A fine-tune (`trained_model.tar`) is extracted into a cache folder keyed by its SHA-256, the
base model's `compression_state_dict.bin` is linked beside it, and the folder is loaded with
stock `MusicGen.get_pretrained(folder)`, as for a released checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicgen_ft.constants import TAR_NAME
from musicgen_ft.errors import FineTuneError, InputError
from musicgen_ft.net import allow_private_from_env, download, is_url
from musicgen_ft.paths import cache_root
from musicgen_ft.variants import COMPRESSION_FILE, LM_FILE, Variant, get_variant
from musicgen_ft.weights import sha256_of

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: Any  # audiocraft.models.MusicGen
    variant: Variant
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def cache_dir() -> Path:
    """Extracted fine-tunes and downloaded tars (`finetunes/` of the cache root)."""
    return cache_root() / "finetunes"


WEIGHTS_MAX_BYTES = 20 * 1000**3  # the largest fine-tune tar a URL may deliver


def fetch_weights(weights: str, *, allow_private: bool | None = None) -> Path:
    """A local path for `weights`: a path, or a URL downloaded (once) to the cache.

    URLs go through the guarded downloader (`musicgen_ft.net.download`): https only, public
    addresses only unless `allow_private`, redirects checked hop by hop, size capped.

    Args:
        weights: trained_model.tar path or http(s) URL.
        allow_private: The private-URL switch; None reads `MUSICGEN_FT_ALLOW_PRIVATE_URLS`
            (true/1/yes/on).

    Raises:
        InputError: the path does not exist, or the URL is refused (UnsafeUrlError).
        DownloadError: the download failed.
    """
    if is_url(weights):
        if allow_private is None:
            allow_private = allow_private_from_env()
        target = cache_dir() / "downloads" / hashlib.sha256(weights.encode()).hexdigest()[:16]
        tar_path = target / TAR_NAME
        if not tar_path.exists():
            download(
                weights,
                tar_path,
                max_bytes=WEIGHTS_MAX_BYTES,
                allow_private=allow_private,
                field="weights",
            )
        return tar_path
    path = Path(weights).expanduser()
    if not path.exists():
        raise InputError("weights", f"{weights} does not exist; give a trained_model.tar")
    return path


def extract_finetune(tar_path: Path) -> tuple[Path, dict[str, Any]]:
    """Extract `trained_model.tar` (once) and return its folder and metadata."""
    if not tarfile.is_tarfile(tar_path):
        raise InputError("weights", f"{tar_path} is not a tar archive (trained_model.tar)")
    target = cache_dir() / sha256_of(tar_path)[:16]
    if not (target / LM_FILE).is_file():
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with tarfile.open(tar_path) as tar:
            names = tar.getnames()
            if LM_FILE not in names:
                raise InputError("weights", f"{tar_path} has no {LM_FILE}; is it a fine-tune?")
            _extract_safely(tar, tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    meta_path = target / "metadata.json"
    metadata = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return target, metadata


def _extract_safely(tar: tarfile.TarFile, dest: Path) -> None:
    """Regular files only, inside `dest`. Python's `filter="data"` where it exists (3.11.4+,
    3.10.12+); Debian bookworm's Python 3.11.2 lacks it, so the same rule by hand there."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    safe = [
        m
        for m in tar.getmembers()
        if m.isfile() and not m.name.startswith("/") and ".." not in Path(m.name).parts
    ]
    tar.extractall(dest, members=safe)


def load_model(
    weights: str | Path | None = None,
    model_version: str | None = None,
    device: str | None = None,
    *,
    allow_private: bool | None = None,
) -> LoadedModel:
    """Load a fine-tune (`weights`: trained_model.tar path or URL) or a base variant.

    `allow_private` is the private-URL switch for a `weights` URL (see `fetch_weights`).
    """
    # A URL is fetched (or refused) before the heavy imports.
    tar_path = fetch_weights(str(weights), allow_private=allow_private) if weights else None

    from audiocraft.models import MusicGen

    from musicgen_ft.weights import check_text_conditioner, resolve_base_model

    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if tar_path is not None:
        folder, metadata = extract_finetune(tar_path)
        version = metadata.get("model_version") or model_version
        if not version:
            raise InputError("weights", f"{tar_path} does not say which base model it tunes")
        variant = get_variant(str(version))
        base = resolve_base_model(variant)
        link = folder / COMPRESSION_FILE
        if not link.exists():
            link.symlink_to((base / COMPRESSION_FILE).resolve())
        source = str(tar_path)
    else:
        variant = get_variant(model_version or "small")
        folder, metadata = resolve_base_model(variant), {}
        source = f"base model {variant.name}"
    check_text_conditioner(variant)
    try:
        model = MusicGen.get_pretrained(str(folder), device=device)
    except FineTuneError:
        raise
    except Exception as exc:
        raise FineTuneError(f"cannot load the model from {folder}: {exc}") from exc
    logger.info(
        "loaded %s (%s, %d Hz, %d channel(s))",
        source,
        variant.name,
        model.sample_rate,
        model.audio_channels,
    )
    return LoadedModel(model=model, variant=variant, metadata=metadata, source=source)
