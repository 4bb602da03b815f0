"""AudioCraft's Hydra config tree, extended with this project's `config/` folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.global_hydra import GlobalHydra
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import DictConfig

PROJECT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def _audiocraft_config_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("audiocraft")
    assert spec is not None and spec.origin is not None, "audiocraft is not installed"
    path = Path(spec.origin).resolve().parent.parent / "config"
    return path


AUDIOCRAFT_CONFIG_DIR = _audiocraft_config_dir()


class ProjectSearchPath(SearchPathPlugin):
    """Adds this project's Hydra configs after AudioCraft's own."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="musicgen-ft", path=f"file://{PROJECT_CONFIG_DIR}")


def register_search_path() -> None:
    """Register the search-path plugin (idempotent)."""
    Plugins.instance().register(ProjectSearchPath)


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """Compose AudioCraft's `config.yaml` with `overrides`, as Dora would for a run."""
    if not (AUDIOCRAFT_CONFIG_DIR / "config.yaml").exists():
        raise RuntimeError(
            f"AudioCraft's Hydra config tree is missing at {AUDIOCRAFT_CONFIG_DIR}; "
            "install audiocraft from its extracted sdist (scripts/setup.sh does)"
        )
    register_search_path()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(AUDIOCRAFT_CONFIG_DIR), version_base="1.1"):  # as AudioCraft
        return compose("config", list(overrides))
