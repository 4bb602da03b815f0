"""The base checkpoint is the truth about the model: a base whose saved config differs from the
variant table trains, and one that cannot be fine-tuned is refused before any heavy work."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from spine_support import quick_inputs

from musicgen_ft.errors import WeightsMissingError
from musicgen_ft.variants import LM_FILE, get_variant
from training.base_config import architecture_overrides


def _other_shaped_debug(models: Path, debug_model_dir: Path) -> Path:
    """A `debug` base of another shape than our table's (dim 32, 1 layer, 2 heads)."""
    from audiocraft.models import builders
    from hub_standins import save_released

    from training.debug_model import lm_overrides
    from training.hydra_config import compose_config

    folder = models / "debug"
    shutil.copytree(debug_model_dir, folder)
    cfg = compose_config(
        [
            *lm_overrides("debug"),
            "transformer_lm.dim=32",
            "transformer_lm.num_layers=1",
            "transformer_lm.num_heads=2",
        ]
    )
    torch.manual_seed(0)
    save_released(builders.get_lm_model(cfg), cfg, folder / LM_FILE)
    return folder


@pytest.mark.slow
def test_a_base_of_another_shape_trains_as_its_config_says(
    example_archive: Path,
    debug_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from musicgen_ft.pipeline import run_job
    from training.launch import Topology

    monkeypatch.setenv("MUSICGEN_FT_MODELS", str(tmp_path / "models"))
    _other_shaped_debug(tmp_path / "models", debug_model_dir)
    result = run_job(quick_inputs(example_archive), tmp_path / "run", Topology("cpu", 1))
    assert result.tar_path is not None
    import tarfile

    with tarfile.open(result.tar_path) as tar:
        member = tar.extractfile("state_dict.bin")
        assert member is not None
        pkg = torch.load(member, map_location="cpu", weights_only=False)
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(pkg["xp.cfg"])
    assert (cfg.transformer_lm.dim, cfg.transformer_lm.num_layers) == (32, 1)
    assert pkg["best_state"]["emb.0.weight"].shape[-1] == 32


def test_a_base_that_cannot_be_fine_tuned_is_refused(tmp_path: Path) -> None:
    torch.save({"best_state": {}}, tmp_path / LM_FILE)
    with pytest.raises(WeightsMissingError, match=r"no xp\.cfg"):
        architecture_overrides(tmp_path, get_variant("debug"))
    (tmp_path / LM_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsMissingError, match="cannot be read"):
        architecture_overrides(tmp_path, get_variant("debug"))


def test_a_base_with_other_codebooks_is_refused(debug_model_dir: Path) -> None:
    with pytest.raises(WeightsMissingError, match="8"):
        architecture_overrides(debug_model_dir, get_variant("debug-stereo"))
