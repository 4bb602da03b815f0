"""Generate music with a base or fine-tuned MusicGen: Cog's predictor and a command line.

    python predict.py --weights runs/mine/trained_model.tar --prompt "lofi piano" --duration 8

A thin edge over inference.loading and inference.generate. The parameters Cog sees are built
from the one generation table (inference/params.py), so no default or bound is repeated here.
"""

from __future__ import annotations

import inspect
import shutil
import sys
import tempfile
from pathlib import Path as _Path
from typing import Any

from cog import BasePredictor, Input, Path

from inference.generate import generate, write_audio
from inference.loading import LoadedModel, load_model
from inference.params import GenerateParams
from musicgen_ft.schema import cog_entry_point, cog_parameters, parse

REPLICATE_WEIGHTS = inspect.Parameter(
    "replicate_weights",
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    default=Input(
        description="Another trained_model.tar (URL or path) to swap in without restarting.",
        default=None,
    ),
    annotation=str,
)


class Predictor(BasePredictor):
    loaded: LoadedModel
    weights_source: str | None
    _last_out: _Path | None = None

    def setup(self, weights: Path | None = None) -> None:
        """Load the fine-tune Cog passes as `weights` (a trained_model.tar path or URL)."""
        self.weights_source = str(weights) if weights else None
        self.loaded = load_model(self.weights_source, None if weights else "small")

    def predict(self, **inputs: Any) -> Path:
        """Cog's prediction entry point; its parameters are GenerateParams' fields."""
        replicate_weights = inputs.pop("replicate_weights", None)
        if replicate_weights and replicate_weights != self.weights_source:
            self.loaded = load_model(replicate_weights)
            self.weights_source = replicate_weights
        given = {k: (_Path(v) if isinstance(v, Path) else v) for k, v in inputs.items()}
        params = parse(GenerateParams, {k: v for k, v in given.items() if v is not None})
        wav = generate(self.loaded, params)
        # Cog has sent the previous prediction's file by now: remove it rather than pile up.
        if self._last_out is not None:
            shutil.rmtree(self._last_out, ignore_errors=True)
        self._last_out = _Path(tempfile.mkdtemp(prefix="musicgen-ft-out-"))
        out = self._last_out / f"output.{params.output_format}"
        path = write_audio(
            wav, self.loaded.model.sample_rate, out, params.output_format,
            params.normalization_strategy,
        )  # fmt: skip
        return Path(path)


_SELF = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
cog_entry_point(
    Predictor.predict, [_SELF, *cog_parameters(GenerateParams), REPLICATE_WEIGHTS], Path
)


if __name__ == "__main__":
    from inference.cli import main

    sys.exit(main())
