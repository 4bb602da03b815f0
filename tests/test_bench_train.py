"""bench/train_throughput.py --tiny runs on CPU and writes the fields the benchmark reports.

Figures are not asserted (CI prints them: `make bench-train-tiny`); this only keeps the script
from rotting: every configuration of the matrix runs and its JSON has the reported fields.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIELDS = (
    "shape", "precision", "tokens", "accumulation", "global_batch", "micro_batch",
    "micro_batches", "step_s", "per_sample_s", "tokens_per_s", "tflops", "mfu", "peak_tflops",
    "peak_mem_gib", "params", "seq_steps", "frames", "step_flops", "flop_formula",
)  # fmt: skip


def test_tiny_throughput_json(tmp_path: Path) -> None:
    out = tmp_path / "tiny.json"
    run = subprocess.run(
        [sys.executable, "bench/train_throughput.py", "--tiny", "--steps", "1", "--warmup", "0",
         "--seconds", "1", "--rounds", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["environment"]["device"] == "cpu"
    results = report["results"]
    combos = {(r["tokens"], r["accumulation"]) for r in results}
    assert combos == {("cache", "off"), ("cache", "on"), ("encode", "off"), ("encode", "on")}
    for r in results:
        assert r["ok"], r["error"]
        assert all(name in r for name in FIELDS)
        assert r["step_s"] > 0 and r["tokens_per_s"] > 0 and r["step_flops"] > 0
        assert r["mfu"] is None  # no peak on CPU
        assert r["micro_batches"] == (2 if r["accumulation"] == "on" else 1)
    assert len(report["accumulation_ratios"]) == 2
    assert "tiny-small" in run.stdout and "tok/s" in run.stdout
