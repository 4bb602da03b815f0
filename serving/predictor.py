"""The predictor: one long-lived process per server that runs predictions, one at a time.

    python -m serving.predictor --device auto --models 2 --idle_s 600

It reads requests as JSON lines on stdin and answers on stdout (its only use of stdout; what
libraries print goes to stderr):

    -> {"op": "predict", "id", "key", "weights", "variant", "params", "out_dir", "log"}
    -> {"op": "cancel", "id"}
    <- {"id", "event": "succeeded", "output": "output.wav"}
    <- {"id", "event": "failed", "error": "one line"}
    <- {"id", "event": "canceled"}

Models load through inference/loading.py, the door predict.py uses, so a fine-tuned tar loads
exactly as `predict.py --weights` loads it. The last `--models` models stay loaded (least
recently used goes first) and all are unloaded after `--idle_s` without a request, giving the
GPU's memory back to trainings. A cancel stops the LM between two tokens (AudioCraft's
progress hook), so the loaded models are kept.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import queue
import sys
import threading
import time
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Any, TextIO

from musicgen_ft.errors import FineTuneError

log = logging.getLogger("serving.predictor")
BAR = 20


class Canceled(Exception):
    """Raised from the progress hook when the running prediction was canceled."""


class Models:
    """Loaded models by key (a version id), least recently used first."""

    def __init__(self, capacity: int, device: str) -> None:
        self.capacity = max(1, capacity)
        self.device = device
        self._loaded: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str, weights: str | None, variant: str) -> Any:
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        while len(self._loaded) >= self.capacity:
            self._loaded.popitem(last=False)
            release(self.device)
        from inference.loading import load_model

        log.info("[predict] loading %s", weights or f"base model {variant}")
        loaded = load_model(weights, None if weights else variant, self.device)
        always_report_progress(loaded.model)
        self._loaded[key] = loaded
        return loaded

    def clear(self) -> None:
        if self._loaded:
            self._loaded.clear()
            release(self.device)


def release(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def always_report_progress(model: Any) -> None:
    """Make this MusicGen call its custom progress hook on every generation (AudioCraft calls
    it only when a generate method is given progress=True, which inference.generate is not)."""
    generate_tokens = model._generate_tokens

    def with_progress(attributes: Any, prompt_tokens: Any, progress: bool = False) -> Any:
        return generate_tokens(attributes, prompt_tokens, True)

    model._generate_tokens = with_progress


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Progress:
    """The progress hook of one prediction: a tqdm-like line in its log now and then (the
    official client parses `NN%|...| k/n`), and the point where a cancel stops it."""

    def __init__(self, id: str, canceled: set[str], lock: threading.Lock) -> None:
        self.id = id
        self._canceled = canceled
        self._lock = lock
        self._shown = -1
        self._at = 0.0

    def check(self) -> None:
        with self._lock:
            if self.id in self._canceled:
                raise Canceled()

    def __call__(self, done: int, total: int) -> None:
        self.check()
        percent = min(100, int(100 * done / max(1, total)))
        if percent == 100 or (percent != self._shown and time.monotonic() - self._at > 0.5):
            self._shown, self._at = percent, time.monotonic()
            filled = BAR * percent // 100
            log.info("%3d%%|%s%s| %d/%d", percent, "#" * filled, " " * (BAR - filled), done, total)


class Predictor:
    def __init__(self, models: Models, replies: TextIO) -> None:
        self.models = models
        self.replies = replies
        self.requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.canceled: set[str] = set()
        self.lock = threading.Lock()

    def read(self, lines: TextIO) -> None:
        """Requests from the server; a cancel is noted at once, even mid-generation."""
        for line in lines:
            message = json.loads(line)
            if message.get("op") == "cancel":
                with self.lock:
                    self.canceled.add(message["id"])
            else:
                self.requests.put(message)
        self.requests.put(None)  # the server closed the pipe: stop

    def serve(self, idle_s: float) -> None:
        while True:
            try:
                request = self.requests.get(timeout=idle_s)
            except queue.Empty:
                self.models.clear()  # nobody asked for a while: give the memory back
                continue
            if request is None:
                return
            self.reply(request["id"], **self.run(request))

    def reply(self, id: str, **fields: Any) -> None:
        self.replies.write(json.dumps({"id": id, **fields}) + "\n")
        self.replies.flush()

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        id = request["id"]
        handler = logging.FileHandler(request["log"], encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger().addHandler(handler)
        try:
            return self._run(request)
        except Canceled:
            log.info("[predict] canceled")
            return {"event": "canceled"}
        except FineTuneError as exc:
            log.info("[predict] failed: %s", exc)
            return {"event": "failed", "error": str(exc).splitlines()[0]}
        except Exception as exc:
            log.info("[predict] failed:\n%s", traceback.format_exc())
            return {"event": "failed", "error": f"internal error: {type(exc).__name__}: {exc}"}
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
            with self.lock:
                self.canceled.discard(id)

    def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        from inference.generate import write_audio
        from inference.params import GenerateParams
        from musicgen_ft.schema import parse

        progress = Progress(request["id"], self.canceled, self.lock)
        progress.check()  # canceled while queued
        params = parse(GenerateParams, request["params"])
        loaded = self.models.get(request["key"], request["weights"], request["variant"])
        log.info("[predict] generating %g s (%s)", params.duration, params.prompt or "no prompt")
        started = time.monotonic()
        try:
            wav = _generate(loaded, params, progress)
        except Exception as exc:
            if not _out_of_memory(exc):
                raise
            # A training may hold the GPU: drop the other models, try once more.
            log.info("[predict] out of GPU memory; retrying with the other models unloaded")
            self.models.clear()
            loaded = self.models.get(request["key"], request["weights"], request["variant"])
            try:
                wav = _generate(loaded, params, progress)
            except Exception as again:
                if _out_of_memory(again):
                    raise FineTuneError(
                        "the GPU is out of memory (a training may be using it); retry later, "
                        "or serve with --predict_device cpu or another GPU"
                    ) from None
                raise
        out_dir = Path(request["out_dir"])
        path = write_audio(
            wav,
            loaded.model.sample_rate,
            out_dir / f"output.{params.output_format}",
            params.output_format,
            params.normalization_strategy,
        )
        seconds = wav.shape[-1] / loaded.model.sample_rate
        log.info(
            "[predict] wrote %s (%.2f s) in %.1f s", path.name, seconds, time.monotonic() - started
        )
        return {"event": "succeeded", "output": path.name}


def _generate(loaded: Any, params: Any, progress: Progress) -> Any:
    from inference.generate import generate

    loaded.model.set_custom_progress_callback(progress)
    try:
        return generate(loaded, params)
    finally:
        loaded.model.set_custom_progress_callback(None)


def _out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(exc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m serving.predictor")
    p.add_argument("--device", default="auto")
    p.add_argument("--models", type=int, default=2)
    p.add_argument("--idle_s", type=float, default=600.0)
    args = p.parse_args(argv)
    # Answers go to the real stdout; anything else printed (libraries, C code) to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    predictor = Predictor(Models(args.models, pick_device(args.device)), replies)
    threading.Thread(target=predictor.read, args=(sys.stdin,), daemon=True).start()
    predictor.serve(args.idle_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
