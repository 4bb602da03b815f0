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
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from musicgen_ft.atomic import atomic_write_text
from musicgen_ft.clirun import run_cli
from musicgen_ft.constants import env_flag
from musicgen_ft.errors import FineTuneError, WeightsMissingError
from musicgen_ft.paths import models_dir, torch_hub_dir
from musicgen_ft.variants import COMPRESSION_FILE, LM_FILE, VARIANTS, Variant

logger = logging.getLogger(__name__)


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
        sha256: Pinned full SHA-256 checksums by file name; "url" assets need one per file,
            "hf" files without one are checked against what the hub publishes.
        dest: For "url" assets, the folder (relative to the models dir) they are saved in.
        used_for: One line for the help text.
        revision: For "hf" assets, the branch to fetch (default: main), resolved to one
            commit for all files. The weights lock pins that commit (see `WeightsLock`).
        licence: Shown when the asset is downloaded (terms the user accepts by using it).
    """

    name: str
    source: str
    location: str
    files: tuple[str, ...]
    sha256: dict[str, str] = field(default_factory=dict)
    dest: str = ""
    used_for: str = ""
    revision: str | None = None
    licence: str = ""


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
    # cache). Demucs names its files `<sig>-<first 8 hex of their SHA-256>.th`; the full SHA-256
    # below (consistent with that prefix) is the one two independent public projects pin.
    # It is also linked into the torch hub cache, where AudioCraft's chroma conditioner (melody
    # variants) loads it through `demucs.pretrained.get_model("htdemucs")`.
    "htdemucs": Asset(
        name="htdemucs",
        source="url",
        location="https://dl.fbaipublicfiles.com/demucs/hybrid_transformer",
        files=("955717e8-8726e21a.th",),
        sha256={
            "955717e8-8726e21a.th": (
                "8726e21a993978c7ba086d3872e7608d7d5bfca646ca4aca459ffda844faa8b4"
            )
        },
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
        licence=(
            "Essentia's Discogs-EffNet models are by the Music Technology Group (UPF), under "
            "CC BY-NC-SA 4.0: non-commercial use only, attribution, share-alike "
            "(https://essentia.upf.edu/models.html); a commercial licence is available from "
            "UPF. Turn auto_labeling off to train without them."
        ),
    ),
    # --- CLAP (quality report; optional) ---------------------------------------------------
    # Owned by evaluation/ (issue 13). LAION's CLAP as `transformers` loads it; not part of any
    # variant's default set: the quality report adds CLAP measures when it is there.
    "clap": Asset(
        name="clap",
        source="hf",
        location="laion/clap-htsat-unfused",
        files=(
            "config.json",
            "preprocessor_config.json",
            "pytorch_model.bin",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "vocab.json",
            "merges.txt",
        ),
        used_for="quality report: CLAP distance, text agreement, nearest chunk (optional)",
    ),
}


DEMUCS_ASSET = "htdemucs"
ESSENTIA_ASSET = "essentia"


def assets_for_variant(variant: Variant) -> list[str]:
    """Names of the assets the default job for `variant` needs: the base model and its text
    encoder, Demucs (vocal removal is on by default; melody conditioning) and the taggers
    (auto-labeling is on by default)."""
    if variant.hf_repo is None:
        return []
    names = [variant.name]
    if variant.text_conditioner:
        names.append(variant.text_conditioner)
    return [*names, DEMUCS_ASSET, ESSENTIA_ASSET]


# --- resolution ----------------------------------------------------------------------------


def _hf_cached(repo: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename)
    return Path(found) if isinstance(found, str) else None


def hub_asset_folder(name: str) -> Path | None:
    """The folder holding every file of the hub asset `name`: `$MUSICGEN_FT_MODELS/<name>/`, then
    one snapshot of the Hugging Face cache; None when it was not fetched (or is split)."""
    asset = ASSETS[name]
    local = models_dir() / name
    if all((local / f).is_file() for f in asset.files):
        return local
    found = [_hf_cached(asset.location, f) for f in asset.files]
    folders = {path.parent for path in found if path is not None}
    if None not in found and len(folders) == 1:
        return folders.pop()
    return None


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
    """Resolve everything training `variant` loads (base model, text encoder, and for melody
    variants the chroma conditioner's Demucs), downloading what is missing when online."""
    try:
        path = resolve_base_model(variant)
        check_text_conditioner(variant)
    except WeightsMissingError:
        if offline():
            raise
        download(
            [n for n in assets_for_variant(variant) if n not in (DEMUCS_ASSET, ESSENTIA_ASSET)]
        )
        path = resolve_base_model(variant)
        check_text_conditioner(variant)
    if variant.melody:
        ensure_chroma_demucs()
    return path


def ensure_fetched(check: Callable[[], object], asset: str) -> None:
    """Run `check` (a stage's pre-flight); when it finds files missing, the machine is online and
    `asset` is one `download-weights` knows, download it and check again."""
    try:
        check()
    except WeightsMissingError:
        if offline() or asset not in ASSETS:
            raise
        logger.info("%s is missing; downloading it (as `download-weights %s` would)", asset, asset)
        download([asset])
        check()


def ensure_taggers(folder: Path | None) -> None:
    """Before any heavy work: fetch the Essentia taggers when they are missing and the machine
    is online; offline, say which files are missing and the command that gets them (labels are
    then key and BPM only: auto-labeling never fails a job)."""
    from labeling.taggers import missing_files

    missing = missing_files(folder)
    if not missing:
        return
    if not offline():
        try:
            download([ESSENTIA_ASSET])
            return
        except FineTuneError as exc:  # missing, unreachable host, refused or bad download
            logger.warning("could not download the Essentia taggers: %s", exc)
    logger.warning(
        "auto-labeling: genre, mood and instrument labels need %s in %s; run "
        "`musicgen-ft download-weights %s` (key and BPM are labeled without them)",
        ", ".join(missing),
        folder,
        ESSENTIA_ASSET,
    )


# --- download ------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """Git's object id of a file (SHA-1 of `blob <size>\\0<bytes>`): what the hub publishes for
    files kept in git rather than LFS (configs, tokenizers)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Published:
    """What the hub publishes about one file of a repository at one commit."""

    sha256: str | None  # LFS files
    git_blob: str | None  # every file


def _hub_files(repo: str, revision: str | None) -> tuple[str, dict[str, Published]]:
    """The commit `revision` resolves to, and what the hub publishes about each file there."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    out: dict[str, Published] = {}
    for sibling in info.siblings or []:
        lfs = getattr(sibling, "lfs", None)
        sha = getattr(lfs, "sha256", None) if lfs is not None else None
        out[sibling.rfilename] = Published(sha256=sha, git_blob=getattr(sibling, "blob_id", None))
    if not info.sha:
        raise FineTuneError(f"{repo}: the hub did not say which commit {revision or 'main'} is")
    return info.sha, out


LOCK_ENV = "MUSICGEN_FT_WEIGHTS_LOCK"


@dataclass
class WeightsLock:
    """The commit each Hugging Face repository was downloaded at, and every file's SHA-256.

    Written by the first download (`$MUSICGEN_FT_WEIGHTS_LOCK`, default
    `$MUSICGEN_FT_MODELS/weights.lock.json`); a later download, on this machine or on another
    given the same file, must find the repository at the locked commit and the same bytes, or it
    is refused unless `download-weights --update` accepts the new commit. A team shares one lock
    to get identical weights on every machine.
    """

    path: Path
    entries: dict[str, dict[str, Any]]

    @classmethod
    def load(cls) -> WeightsLock:
        configured = os.environ.get(LOCK_ENV, "").strip()
        path = Path(configured) if configured else models_dir() / "weights.lock.json"
        try:
            entries = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, json.JSONDecodeError) as exc:
            raise FineTuneError(f"cannot read the weights lock {path}: {exc}") from None
        return cls(path, entries if isinstance(entries, dict) else {})

    def check(self, asset: Asset, commit: str, update: bool) -> None:
        locked = self.entries.get(asset.name, {}).get("commit")
        if locked and locked != commit and not update:
            raise FineTuneError(
                f"{asset.location} is now at commit {commit[:12]}, but {self.path} locks "
                f"{asset.name} at {locked[:12]}; run `musicgen-ft download-weights --update "
                f"{asset.name}` to accept the new commit, or keep using the files you have"
            )

    def locked_sha256(self, asset: Asset, commit: str, name: str) -> str | None:
        entry = self.entries.get(asset.name, {})
        return entry.get("files", {}).get(name) if entry.get("commit") == commit else None

    def record(self, asset: Asset, commit: str, paths: list[Path]) -> None:
        self.entries[asset.name] = {
            "repo": asset.location,
            "commit": commit,
            "files": {name: sha256_of(p) for name, p in zip(asset.files, paths, strict=True)},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.entries, indent=2, sort_keys=True) + "\n")


def _download_hf(asset: Asset, update: bool = False) -> list[Path]:
    """Every file of the asset from one commit, each verified against what the hub publishes
    for it at that commit (LFS SHA-256, else git's blob id), against our own pin, and against
    the weights lock, which then records the commit and checksums."""
    from huggingface_hub import hf_hub_download

    commit, published = _hub_files(asset.location, asset.revision)
    lock = WeightsLock.load()
    lock.check(asset, commit, update)
    paths = []
    for name in asset.files:
        label = f"{asset.location}/{name}@{commit[:12]}"
        if name not in published:
            raise FineTuneError(f"{label}: the repository has no such file")
        # By the branch name, so the cache records it (offline loaders ask for "main"); the
        # snapshot must be the commit whose checksums were read.
        path = Path(hf_hub_download(asset.location, name, revision=asset.revision or "main"))
        if path.parent.name != commit and commit not in path.parts:
            raise FineTuneError(f"{label}: the repository moved to another commit meanwhile; retry")
        _verify_published(path, published[name], asset.sha256.get(name), label)
        locked = lock.locked_sha256(asset, commit, name)
        if locked is not None:
            _verify(path, locked, f"{label} (weights lock {lock.path})")
        paths.append(path)
    lock.record(asset, commit, paths)
    logger.info(
        "%s: %d files at commit %s, verified; locked in %s",
        asset.name, len(paths), commit, lock.path,
    )  # fmt: skip
    return paths


def _verify_published(path: Path, published: Published, pinned: str | None, label: str) -> None:
    if pinned or published.sha256:
        _verify(path, pinned or published.sha256, label)
        return
    if not published.git_blob:
        raise FineTuneError(f"{label}: the hub publishes no checksum for it; refusing it")
    actual = git_blob_sha1(path)
    if actual != published.git_blob:
        path.resolve().unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        raise FineTuneError(
            f"{label}: git blob id {actual} does not match the published {published.git_blob}"
        )


_ASSET_MAX_BYTES = 20 * 1000**3
_FULL_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


MIRROR_ENV = "MUSICGEN_FT_MIRROR"


def mirrored(url: str) -> tuple[str, bool]:
    """`https://HOST/PATH` as `$MUSICGEN_FT_MIRROR/HOST/PATH` when a mirror is configured.

    Returns the URL to fetch and whether it is the operator's mirror (which may be plain http
    on a private address: it was configured explicitly).
    """
    base = os.environ.get(MIRROR_ENV, "").strip().rstrip("/")
    if not base:
        return url, False
    parts = urlsplit(url)
    return f"{base}/{parts.netloc}{parts.path}", True


def _download_url(asset: Asset) -> list[Path]:
    """Download a "url" asset's files through the guarded downloader, each against its pinned
    full SHA-256. A file already in place (a user's pre-filled cache) is used as found."""
    from musicgen_ft import net

    dest = models_dir() / (asset.dest or asset.name)
    paths = []
    for name in asset.files:
        target = dest / name
        expected = asset.sha256.get(name)
        url, is_mirror = mirrored(f"{asset.location.rstrip('/')}/{name}")
        found = target if target.exists() else _found_elsewhere(asset, name)
        if found is not None:
            logger.info("%s: using %s as found (not re-verified)", asset.name, found)
            target = found
        else:
            if expected is None or not _FULL_SHA256.fullmatch(expected):
                raise FineTuneError(f"{url}: no full SHA-256 pinned for it; refusing it")
            net.download(
                url,
                target,
                max_bytes=_ASSET_MAX_BYTES,
                sha256=expected.lower(),
                # The locations are this program's own table or the operator's mirror, not user
                # input: private hosts (an internal mirror, a test server) are admitted.
                allow_private=True,
                allow_http=is_mirror,
                field=asset.name,
            )
        paths.append(target)
    if asset.name == DEMUCS_ASSET:
        for path in paths:
            place_in_torch_hub(path)
    return paths


def _found_elsewhere(asset: Asset, name: str) -> Path | None:
    """A Demucs checkpoint the user already has where Demucs itself keeps them: the torch hub
    cache under the published name, or our Demucs folder under its signature (any checksum
    suffix: Demucs checks the suffix against the content when it loads the file)."""
    if asset.name != DEMUCS_ASSET:
        return None
    hub = torch_hub_dir() / "checkpoints" / name
    if hub.is_file():
        return hub
    signature = name.split("-", 1)[0]
    ours = sorted((models_dir() / asset.dest).glob(f"{signature}-*.th"))
    return ours[0] if ours else None


def place_in_torch_hub(path: Path) -> Path:
    """Link a Demucs checkpoint into torch hub's cache (where `demucs.pretrained` looks)."""
    hub = torch_hub_dir() / "checkpoints" / path.name
    if not hub.exists():
        hub.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, hub)
        except OSError:
            shutil.copyfile(path, hub)
        logger.info("placed %s in the torch hub cache (%s)", path.name, hub)
    return hub


def ensure_chroma_demucs() -> Path:
    """The Demucs checkpoint the chroma conditioner of melody variants loads, in the torch hub
    cache: found there, linked there from the models dir, or downloaded when online."""
    asset = ASSETS[DEMUCS_ASSET]
    [name] = asset.files
    hub = torch_hub_dir() / "checkpoints" / name
    if hub.is_file():
        return hub
    ours = models_dir() / asset.dest / name
    if ours.is_file():
        return place_in_torch_hub(ours)
    if offline():
        raise WeightsMissingError(
            f"melody conditioning needs Demucs {name} in {hub.parent}/ (torch hub's cache) or "
            f"{ours.parent}/; run `musicgen-ft download-weights {DEMUCS_ASSET}` on a machine "
            "with internet"
        )
    download([DEMUCS_ASSET])
    return hub


def _verify(path: Path, expected: str | None, label: str) -> None:
    """Refuse (and delete) a file whose SHA-256 is not the full `expected` one."""
    if expected is None or not _FULL_SHA256.fullmatch(expected):
        raise FineTuneError(f"{label}: no full SHA-256 to verify against; refusing it")
    actual = sha256_of(path)
    if actual != expected.lower():
        path.resolve().unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        raise FineTuneError(f"{label}: SHA-256 {actual} does not match the expected {expected}")


def download(names: Iterable[str], *, update: bool = False) -> list[Path]:
    """Download and verify the named assets. Raises FineTuneError with the reason.

    `update`: accept a Hugging Face repository that moved past its locked commit."""
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
            fetched = _download_hf(asset, update) if asset.source == "hf" else _download_url(asset)
        except FineTuneError:
            raise
        except Exception as exc:  # network and hub errors of many kinds
            raise WeightsMissingError(
                f"{name}: download from {asset.location} failed ({type(exc).__name__}: {exc})"
            ) from None
        paths += fetched
        if asset.licence:
            logger.warning("%s: %s", asset.name, asset.licence)
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
    parser.add_argument(
        "--update",
        action="store_true",
        help="accept Hugging Face repositories that moved past the commit in the weights lock "
        f"(${LOCK_ENV}, default {models_dir()}/weights.lock.json)",
    )
    args = parser.parse_args(argv)
    names: list[str] = list(ASSETS) if args.all else []
    for name in args.names:
        names += assets_for_variant(VARIANTS[name]) if name in VARIANTS else [name]
    if not names:
        parser.error("name at least one asset or model version, or --all")
    return run_cli(
        lambda: _print_all(download(dict.fromkeys(names), update=args.update)),
        prog="download-weights",
    )


def _print_all(paths: list[Path]) -> None:
    for path in paths:
        print(path)
