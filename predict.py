"""Generate music with a base or fine-tuned MusicGen: Cog's predictor and a command line.

    python predict.py --weights runs/mine/trained_model.tar --prompt "lofi piano" --duration 8

A thin edge over inference.loading and inference.generate.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path as _Path

from cog import BasePredictor, Input, Path

from inference.generate import FORMATS, NORMALIZATION, GenerateParams, generate, write_audio
from inference.loading import LoadedModel, load_model


class Predictor(BasePredictor):
    loaded: LoadedModel
    weights_source: str | None

    def setup(self, weights: Path | None = None) -> None:
        """Load the fine-tune Cog passes as `weights` (a trained_model.tar path or URL)."""
        self.weights_source = str(weights) if weights else None
        self.loaded = load_model(self.weights_source, None if weights else "small")

    def predict(
        self,
        prompt: str = Input(description="Describe the music to generate.", default=None),
        input_audio: Path = Input(
            description="Audio to continue (continuation=true) or a melody (melody variants).",
            default=None,
        ),
        duration: float = Input(description="Seconds of audio to generate.", default=8.0, ge=0.1),
        continuation: bool = Input(description="Continue input_audio.", default=False),
        continuation_start: float = Input(
            description="Start of the prompt in input_audio (s).", default=0.0, ge=0
        ),
        continuation_end: float = Input(
            description="End of the prompt in input_audio (s).", default=None
        ),
        normalization_strategy: str = Input(
            description="Output normalization.", default="loudness", choices=list(NORMALIZATION)
        ),
        top_k: int = Input(description="Sample from the k most likely tokens.", default=250),
        top_p: float = Input(description="Nucleus sampling (0 disables).", default=0.0),
        temperature: float = Input(description="Sampling temperature.", default=1.0),
        classifier_free_guidance: float = Input(description="Guidance strength.", default=3.0),
        output_format: str = Input(description="wav or mp3.", default="wav", choices=list(FORMATS)),
        seed: int = Input(description="Random seed (-1 or empty: random).", default=None),
        replicate_weights: str = Input(
            description="Another trained_model.tar (URL or path) to swap in without restarting.",
            default=None,
        ),
    ) -> Path:
        if replicate_weights and replicate_weights != self.weights_source:
            self.loaded = load_model(replicate_weights)
            self.weights_source = replicate_weights
        params = GenerateParams(
            prompt=prompt,
            duration=duration,
            input_audio=_Path(input_audio) if input_audio else None,
            continuation=continuation,
            continuation_start=continuation_start,
            continuation_end=continuation_end,
            top_k=top_k,
            top_p=top_p,
            temperature=temperature,
            classifier_free_guidance=classifier_free_guidance,
            seed=None if seed is None or seed < 0 else seed,
            normalization_strategy=normalization_strategy,
            output_format=output_format,
        )
        wav = generate(self.loaded, params)
        out = _Path(tempfile.mkdtemp(prefix="musicgen-ft-out-")) / f"output.{output_format}"
        path = write_audio(
            wav, self.loaded.model.sample_rate, out, output_format, normalization_strategy
        )
        return Path(path)


if __name__ == "__main__":
    from inference.cli import main

    sys.exit(main())
