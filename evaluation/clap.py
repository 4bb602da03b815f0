"""CLAP audio and text embeddings for the quality report, when `download-weights clap` fetched
them.

LAION's CLAP (`laion/clap-htsat-unfused`, run with `transformers`' `ClapModel`) maps audio and
text into one space, so the report can say both how close the generated clips sound to the
user's held-out music and how well each clip matches its prompt. It is optional: a job without
it reports in the base model's EnCodec space only (evaluation/quality.py).

Audio is mixed to mono, resampled to the model's rate (48 kHz) with soxr and cut into windows of
at most the model's input length (10 s), so nothing is truncated at random; a last window shorter
than `MIN_WINDOW_S` is dropped unless it is the only one (the feature extractor repeats it to
length). One L2-normalised embedding per window; a clip's embedding is the normalised mean of its
windows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CLAP_ASSET = "clap"
MIN_WINDOW_S = 2.0
BATCH = 16


def find() -> Path | None:
    """The folder holding every file of the `clap` asset: `$MUSICGEN_FT_MODELS/clap/`, then the
    Hugging Face cache; None when it was not fetched."""
    from musicgen_ft.weights import hub_asset_folder

    return hub_asset_folder(CLAP_ASSET)


@dataclass
class ClapSpace:
    """A loaded CLAP model and its processor."""

    model: Any
    processor: Any
    device: str
    source: str  # the hub snapshot (commit) or the local folder it was loaded from

    @classmethod
    def load(cls, folder: Path, device: str = "cpu") -> ClapSpace:
        from transformers import ClapModel, ClapProcessor

        model: Any = ClapModel.from_pretrained(str(folder))
        model = model.to(device).eval()
        processor = ClapProcessor.from_pretrained(str(folder))
        source = folder.name if folder.parent.name == "snapshots" else str(folder)
        return cls(model, processor, device, source)

    @property
    def sample_rate(self) -> int:
        return int(self.processor.feature_extractor.sampling_rate)

    @property
    def window(self) -> int:
        return int(self.processor.feature_extractor.nb_max_samples)

    def cut(self, mono: Any) -> list[Any]:
        """Windows of at most the model's input length (see the module docstring)."""
        size, least = self.window, int(MIN_WINDOW_S * self.sample_rate)
        parts = [mono[i : i + size] for i in range(0, len(mono), size)]
        kept = [p for p in parts if len(p) >= least]
        return kept or parts[:1]

    def audio_file(self, path: Path) -> Any:
        """torch.Tensor [W, D]: one normalised embedding per window of the file."""
        import numpy as np
        import soundfile as sf
        import soxr

        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        mono = data.mean(axis=1)
        if sr != self.sample_rate:
            mono = soxr.resample(mono, sr, self.sample_rate, quality="HQ").astype(np.float32)
        return self.audio(self.cut(mono))

    def audio(self, windows: list[Any]) -> Any:
        import torch

        out = []
        for start in range(0, len(windows), BATCH):
            batch = self.processor(
                audio=windows[start : start + BATCH],
                sampling_rate=self.sample_rate,
                return_tensors="pt",
            )
            with torch.no_grad():
                features = self.model.get_audio_features(**_to(batch, self.device))
            out.append(_normalised(features))
        return torch.cat(out)

    def text(self, texts: list[str]) -> Any:
        """torch.Tensor [N, D]: one normalised embedding per text."""
        import torch

        longest = int(self.model.config.text_config.max_position_embeddings) - 2  # RoBERTa's offset
        batch = self.processor(
            text=texts, return_tensors="pt", padding=True, truncation=True, max_length=longest
        )
        with torch.no_grad():
            features = self.model.get_text_features(**_to(batch, self.device))
        return _normalised(features)


def load_available(device: str) -> tuple[ClapSpace | None, str]:
    """The fetched CLAP model, or None and one line saying why not (a job never fails for it)."""
    folder = find()
    if folder is None:
        return (
            None,
            f"no CLAP model: `musicgen-ft download-weights {CLAP_ASSET}` adds CLAP measures",
        )
    try:
        return ClapSpace.load(folder, device), ""
    except Exception as exc:  # a damaged or foreign folder: report without it
        first = (str(exc).strip().splitlines() or [""])[0]
        line = (
            f"CLAP in {folder} could not be loaded ({type(exc).__name__}: {first}); measures "
            f"left out: run `musicgen-ft download-weights {CLAP_ASSET}` again"
        )
        logger.warning("quality: %s", line)
        return None, line


def clip_embedding(windows: Any) -> Any:
    """A clip's embedding: the normalised mean of its window embeddings."""
    return _normalised(windows.mean(dim=0, keepdim=True))[0]


def _to(batch: Any, device: str) -> dict[str, Any]:
    return {k: v.to(device) for k, v in batch.items()}


def _normalised(features: Any) -> Any:
    """`get_*_features` return the projected embeddings as a tensor (or, in newer
    `transformers`, as an output whose `pooler_output` is that tensor)."""
    import torch

    tensor = features if isinstance(features, torch.Tensor) else features.pooler_output
    return torch.nn.functional.normalize(tensor.float().cpu(), dim=-1)
