"""Vocal removal with Demucs: every chunk becomes the mix minus the model's vocal stem.

The model (`htdemucs` by default; any Demucs model or bag by name) is loaded once per job through
Demucs's own loader, `demucs.pretrained.get_model(name, repo=...)`, from a local model folder:
`VocalSettings.repo`, `$MUSICGEN_FT_MODELS/demucs/` (where `musicgen-ft download-weights htdemucs`
puts it) or the torch hub cache (`$TORCH_HOME/hub/checkpoints/`), or else from the Hugging Face
cache. `check_available` finds the files without importing torch, so a job without weights stops
before any heavy work. Chunks run in batches on the GPU when there is one; a chunk whose vocal stem
is negligible is passed through unchanged and listed in the report.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from musicgen_ft.cache import Cache, content_hash
from musicgen_ft.errors import InputError, StageUnavailableError, WeightsMissingError
from musicgen_ft.paths import models_dir, torch_hub_dir
from musicgen_ft.types import Chunk
from preprocessing.progress import Progress

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "htdemucs"
VOCALS = "vocals"
HF_NAMESPACE = "adefossez"
# Bump when the separation changes what it produces for the same chunk, weights and settings.
VOCAL_CACHE_VERSION = "vocals-2"
_SEPARATED = "separated.wav"


@dataclass(frozen=True)
class VocalSettings:
    """How vocals are removed.

    Attributes:
        enabled: Run vocal removal at all (the job's `drop_vocals`).
        model: Demucs model or bag name (htdemucs, htdemucs_ft, mdx_extra, ...) or a signature.
        repo: Local Demucs model folder (`<sig>.th` files and `<name>.yaml` bags); None searches
            the default places (see the module docstring).
        device: "auto" (CUDA when visible, else CPU), "cpu", "cuda" or "cuda:N".
        batch_size: Chunks separated together.
        shifts: Demucs's random-shift averaging (0 = deterministic, fastest).
        overlap: Overlap of Demucs's split windows.
        vocal_threshold_db: A chunk whose vocal stem is quieter than this, relative to the chunk,
            has no detectable vocals and is passed through unchanged.
    """

    enabled: bool = True
    model: str = DEFAULT_MODEL
    repo: Path | None = None
    device: str = "auto"
    batch_size: int = 4
    shifts: int = 0
    overlap: float = 0.25
    vocal_threshold_db: float = -35.0

    def validate(self) -> VocalSettings:
        if not self.model.strip() or "/" in self.model.replace("hf://", ""):
            raise InputError("demucs_model", f"demucs_model={self.model!r} is not a model name")
        if self.batch_size < 1:
            raise InputError("batch_size", f"demucs batch_size={self.batch_size} must be >= 1")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise InputError("device", f"device={self.device!r}; use auto, cpu, cuda or cuda:N")
        if not 0.0 <= self.overlap < 1.0:
            raise InputError("overlap", f"overlap={self.overlap} must be in [0, 1)")
        return self


# --- where the weights are -----------------------------------------------------------------


def default_repo() -> Path:
    """Where `musicgen-ft download-weights htdemucs` puts Demucs files."""
    return models_dir() / "demucs"


def _demucs_remote() -> Path:
    spec = importlib.util.find_spec("demucs")
    if spec is None or not spec.submodule_search_locations:
        raise StageUnavailableError(
            "drop_vocals needs the demucs package (pip install demucs==4.1.0), or pass "
            "drop_vocals=false"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "remote"


DEMUCS_URL = "https://dl.fbaipublicfiles.com/demucs/"


def published_urls(files: list[str]) -> list[str]:
    """Where Demucs publishes each checkpoint file (from its own `remote/files.txt`)."""
    root, urls = "", {}
    for line in (_demucs_remote() / "files.txt").read_text().splitlines():
        line = line.strip()
        if line.startswith("root:"):
            root = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#"):
            urls[line] = DEMUCS_URL + root + line
    return [urls[f] for f in files if f in urls]


def _published_files(model: str) -> tuple[list[str], Path | None]:
    """The checkpoint files of a published Demucs model and its bag yaml (None for a bare sig)."""
    remote = _demucs_remote()
    names: dict[str, str] = {}
    for line in (remote / "files.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "root:")):
            names[line.split("-", 1)[0]] = line
    bag = remote / f"{model}.yaml"
    if bag.is_file():
        import yaml

        sigs = [str(s) for s in yaml.safe_load(bag.read_text())["models"]]
        missing = [s for s in sigs if s not in names]
        if missing:
            raise StageUnavailableError(f"demucs model {model!r} lists unknown files {missing}")
        return [names[s] for s in sigs], bag
    if model in names:
        return [names[model]], None
    known = sorted(p.stem for p in remote.glob("*.yaml"))
    raise InputError(
        "demucs_model", f"unknown Demucs model {model!r}; choose one of {', '.join(known)}"
    )


def _sig_file(folder: Path, filename: str) -> Path | None:
    """`<sig>-<sha>.th` itself, or any `<sig>.th`/`<sig>-*.th` in `folder`."""
    exact = folder / filename
    if exact.is_file():
        return exact
    sig = filename.split("-", 1)[0].removesuffix(".th")
    for candidate in (folder / f"{sig}.th", *sorted(folder.glob(f"{sig}-*.th"))):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class _Source:
    """Where the model will be loaded from: a repo folder (maybe with a bag yaml to add), or HF."""

    repo: Path | None
    files: tuple[Path, ...] = ()
    bag: Path | None = None


def _local_repo_files(repo: Path, model: str) -> tuple[list[Path], list[str]]:
    """Files `model` needs in a user-given repo folder: (found, missing names)."""
    bag = repo / f"{model}.yaml"
    if bag.is_file():
        import yaml

        sigs = [str(s) for s in yaml.safe_load(bag.read_text()).get("models", [])]
    else:
        sigs = [model]
    found, missing = [], []
    for sig in sigs:
        path = _sig_file(repo, f"{sig}.th")
        if path is None:
            missing.append(f"{sig}.th" if bag.is_file() else f"{model}.yaml or {model}.th")
        else:
            found.append(path)
    return found, missing


def hf_repo_name(model: str) -> str:
    """The Hugging Face repository Demucs publishes `model` in (its own naming rule)."""
    if model == "htdemucs":
        return "HTDemucs"
    if model.startswith("htdemucs_"):
        return "HTDemucs-" + model[len("htdemucs_") :]
    return "Demucs-" + model


def _hf_cached(model: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    repo_id = f"{HF_NAMESPACE}/{hf_repo_name(model)}"
    bag = try_to_load_from_cache(repo_id, f"{model}.yaml")
    if not isinstance(bag, str):
        return False
    import yaml

    sigs = yaml.safe_load(Path(bag).read_text()).get("models", [])
    return all(isinstance(try_to_load_from_cache(repo_id, f"{s}.safetensors"), str) for s in sigs)


def locate(settings: VocalSettings) -> _Source:
    """Find the model's files. Raises WeightsMissingError naming them and where to put them."""
    settings.validate()
    _demucs_remote()
    if settings.repo is not None:
        repo = settings.repo.expanduser()
        if not repo.is_dir():
            raise WeightsMissingError(
                f"demucs_repo={str(repo)!r} is not a folder; give the folder holding the Demucs "
                "<sig>.th files (and <name>.yaml bags)"
            )
        _, missing = _local_repo_files(repo, settings.model)
        if missing:
            raise WeightsMissingError(
                f"Demucs model {settings.model!r} is not complete in {repo}: missing "
                f"{', '.join(missing)}; put the files there, or run `musicgen-ft download-weights "
                f"{settings.model}` and drop demucs_repo"
            )
        return _Source(repo=repo)
    files, bag = _published_files(settings.model)
    folders = [default_repo(), torch_hub_dir() / "checkpoints"]
    for folder in folders:
        found = [_sig_file(folder, name) for name in files]
        if all(found):
            return _Source(repo=folder, files=tuple(p for p in found if p), bag=bag)
    if _hf_cached(settings.model):
        return _Source(repo=None)
    from musicgen_ft.weights import ASSETS

    if settings.model in ASSETS:
        how = f"run `musicgen-ft download-weights {settings.model}` on a machine with internet"
    else:
        how = f"download {' '.join(published_urls(files))}"
    raise WeightsMissingError(
        f"Demucs weights for {settings.model!r} are not available offline: missing "
        f"{', '.join(files)}; put {'them' if len(files) > 1 else 'it'} in {folders[0]}/ "
        f"(or {folders[1]}/), or {how}; or set drop_vocals=false"
    )


def check_available(settings: VocalSettings) -> None:
    """Raise early (before any heavy work) when vocal removal is on but cannot run here.

    Raises:
        WeightsMissingError: the model files are not found; names them and where to put them.
        StageUnavailableError: the demucs package is missing.
        InputError: invalid settings.
    """
    if settings.enabled:
        locate(settings)


# --- loading -------------------------------------------------------------------------------


def load_model(settings: VocalSettings, workdir: Path) -> Any:
    """Load the Demucs model through `demucs.pretrained.get_model`, once per job."""
    from demucs.pretrained import get_model

    source = locate(settings)
    repo = source.repo
    if repo is not None and settings.repo is None:
        # Downloaded checkpoints sit among other files and without their bag definition: give
        # Demucs a folder of just these files plus the bag yaml Demucs publishes, in the work dir.
        repo = workdir / "demucs_repo"
        repo.mkdir(parents=True, exist_ok=True)
        for path in source.files:
            link = repo / path.name
            if not link.exists():
                link.symlink_to(path.resolve())
        if source.bag is not None:
            shutil.copyfile(source.bag, repo / source.bag.name)
    name = settings.model
    try:
        model = get_model(name, repo=repo)
    except SystemExit as exc:  # demucs calls fatal() for a bad repo
        raise WeightsMissingError(f"Demucs could not load {name!r} from {repo}: {exc}") from None
    except Exception as exc:
        raise WeightsMissingError(
            f"Demucs could not load {name!r} from {repo or 'the Hugging Face cache'}: "
            f"{type(exc).__name__}: {exc}; re-run `musicgen-ft download-weights {settings.model}`"
        ) from None
    if VOCALS not in model.sources:
        raise InputError(
            "demucs_model", f"Demucs model {name!r} has no vocals source ({model.sources})"
        )
    model.eval()
    return model


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device", f"device={device!r} but no CUDA GPU is visible; use auto or cpu")
    return device


# --- separation ----------------------------------------------------------------------------


def vocal_stems(
    model: Any, batch: list[np.ndarray], rate: int, device: str, settings: VocalSettings
) -> list[np.ndarray]:
    """The model's vocal stem for each item of `batch` (float32 [frames, channels] at `rate`,
    all the same length), returned at `rate` with the same shape."""
    import torch
    from demucs.apply import apply_model

    frames, channels = batch[0].shape
    model_rate = int(model.samplerate)
    stereo = []
    for audio in batch:
        assert audio.shape == (frames, channels)
        wide = np.repeat(audio, model.audio_channels, axis=1) if channels == 1 else audio
        if rate != model_rate:
            wide = soxr.resample(wide, rate, model_rate, quality="HQ")
        stereo.append(wide.T)
    mix = torch.from_numpy(np.ascontiguousarray(np.stack(stereo))).float()
    ref = mix.mean(dim=1)  # [B, T]: Demucs normalizes by the mono mix's statistics
    mean = ref.mean(dim=1).view(-1, 1, 1)
    std = ref.std(dim=1).view(-1, 1, 1).clamp_min(1e-8)
    with torch.no_grad():
        out = apply_model(
            model,
            (mix - mean) / std,
            shifts=settings.shifts,
            split=True,
            overlap=settings.overlap,
            device=device,
        )
    vocals = (out[:, model.sources.index(VOCALS)] * std + mean).cpu().numpy()
    stems = []
    for item in vocals:
        stem = item.T.astype(np.float32)
        if rate != model_rate:
            stem = soxr.resample(stem, model_rate, rate, quality="HQ")
        stem = _fit(stem, frames)
        stems.append(stem.mean(axis=1, keepdims=True) if channels == 1 else stem)
    return stems


def _fit(audio: np.ndarray, frames: int) -> np.ndarray:
    if audio.shape[0] >= frames:
        return audio[:frames]
    return np.pad(audio, ((0, frames - audio.shape[0]), (0, 0)))


def _level_db(audio: np.ndarray) -> float:
    power = float(np.mean(np.square(audio, dtype=np.float64)))
    return 10 * math.log10(power) if power > 0 else -math.inf


def _model_identity(settings: VocalSettings) -> str:
    """What identifies the weights in use: model name, checkpoint file names and sizes."""
    source = locate(settings)
    files = source.files
    if settings.repo is not None:
        files = tuple(_local_repo_files(settings.repo.expanduser(), settings.model)[0])
    parts = [settings.model, *(f"{p.name}:{p.stat().st_size}" for p in files)]
    return "|".join(parts)


def _vocal_cache(root: Path) -> Cache:
    return Cache("vocals", VOCAL_CACHE_VERSION, root)


def _chunk_key(cache: Cache, path: Path, identity: str, settings: VocalSettings) -> str:
    return cache.key(content_hash(path), identity, str(settings.shifts), str(settings.overlap))


def _cache_put(cache: Cache, key: str, separated: Path, level: float) -> None:
    """Best effort: a full disk must not fail the job."""
    cache.put(
        key,
        {"vocal_level_db": level},
        lambda folder: shutil.copyfile(separated, folder / _SEPARATED),
    )


def _cache_get(cache: Cache, key: str) -> tuple[Path, float] | None:
    hit = cache.get(key)
    if hit is None:
        return None
    entry, record = hit
    try:
        level = float(record["vocal_level_db"])
    except (KeyError, TypeError, ValueError):
        return None
    wav = entry / _SEPARATED
    return (wav, level) if wav.is_file() else None


def _separate(
    model: Any,
    chunks: list[Chunk],
    todo: list[int],
    settings: VocalSettings,
    device: str,
    out_dir: Path,
    progress: Progress,
) -> dict[int, tuple[Path, float]]:
    """Separate chunks `todo` in batches of equal length; returns (mix - vocals file, level)."""
    groups: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for i in todo:
        info = sf.info(str(chunks[i].path))
        groups[(info.frames, info.channels, info.samplerate)].append(i)
    done: dict[int, tuple[Path, float]] = {}
    for (_, _, rate), members in sorted(groups.items()):
        for start in range(0, len(members), settings.batch_size):
            batch_ids = members[start : start + settings.batch_size]
            mixes = [
                sf.read(str(chunks[i].path), dtype="float32", always_2d=True)[0] for i in batch_ids
            ]
            stems = vocal_stems(model, mixes, rate, device, settings)
            for i, mix, vocals in zip(batch_ids, mixes, stems, strict=True):
                target = out_dir / f".separated-{chunks[i].path.name}"
                pcm = np.clip(np.rint((mix - vocals) * 32767.0), -32768, 32767)
                sf.write(str(target), pcm.astype("<i2"), rate, subtype="PCM_16")
                done[i] = (target, _level_db(vocals) - _level_db(mix))
            progress.update(len(batch_ids))
    return done


def _release(model: Any, device: str) -> None:
    """Give the GPU back before training starts (the pipeline process lives on meanwhile)."""
    if not device.startswith("cuda"):
        return
    import torch

    model.to("cpu")
    torch.cuda.empty_cache()


def remove_vocals(
    chunks: list[Chunk],
    settings: VocalSettings,
    workdir: Path,
    model: Any | None = None,
    *,
    cache_dir: Path | None = None,
) -> tuple[list[Chunk], dict[str, Any]]:
    """Write each chunk minus its vocal stem under `workdir`; same ids and `Chunk` fields.

    Args:
        chunks: Prepared chunks (16-bit WAVs at the variant's rate and channels).
        settings: Model, device and batching.
        workdir: The stage's folder; new chunk files go to `workdir/chunks/`.
        model: An already loaded Demucs model (else loaded here, once, if any chunk needs it).
        cache_dir: Reuse separations of identical chunks with the same weights and settings.

    Returns:
        The new chunks, in the same order, and the report's `vocal_removal` record.
    """
    if not settings.enabled or not chunks:
        return list(chunks), {"applied": False}
    started = time.monotonic()
    out_dir = workdir / "chunks"
    out_dir.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    separated: dict[int, tuple[Path, float]] = {}
    cache = _vocal_cache(cache_dir) if cache_dir is not None else None
    if cache is not None:
        identity = _model_identity(settings)
        keys = [_chunk_key(cache, c.path, identity, settings) for c in chunks]
        for i, key in enumerate(keys):
            hit = _cache_get(cache, key)
            if hit is not None:
                separated[i] = hit
    todo = [i for i in range(len(chunks)) if i not in separated]
    device = "none"  # every chunk came from the cache
    with Progress("vocal removal", len(chunks), unit="chunks") as progress:
        progress.update(len(separated))
        if todo:
            model = model if model is not None else load_model(settings, workdir)
            device = resolve_device(settings.device)
            model.to(device)
            try:
                fresh = _separate(model, chunks, todo, settings, device, out_dir, progress)
            finally:
                _release(model, device)
            if cache is not None:
                for i, (path, level) in fresh.items():
                    _cache_put(cache, keys[i], path, level)
            separated.update(fresh)
    new_chunks: list[Chunk] = []
    passed: list[str] = []
    levels: dict[str, float] = {}
    for i, chunk in enumerate(chunks):
        path, level = separated[i]
        target = out_dir / chunk.path.name
        levels[chunk.chunk_id] = round(level, 1) if math.isfinite(level) else -999.0
        if level < settings.vocal_threshold_db:
            passed.append(chunk.chunk_id)
            shutil.copyfile(chunk.path, target)
        else:
            shutil.copyfile(path, target)
        if path.parent == out_dir:
            path.unlink()
        new_chunks.append(dataclasses.replace(chunk, path=target))
    elapsed = time.monotonic() - started
    logger.info(
        "vocal removal: %d chunks with %s on %s in %.1f s (%d from the cache), %d without "
        "detectable vocals",
        len(chunks),
        settings.model,
        device,
        elapsed,
        len(chunks) - len(todo),
        len(passed),
    )
    return new_chunks, {
        "applied": True,
        "model": settings.model,
        "device": device,
        "chunks": len(chunks),
        "processed": len(chunks) - len(passed),
        "cached": len(chunks) - len(todo),
        "passed_through": passed,
        "vocal_threshold_db": settings.vocal_threshold_db,
        "vocal_level_db": levels,
        "seconds": round(elapsed, 2),
    }
