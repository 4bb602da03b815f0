#!/usr/bin/env bash
# Every GPU benchmark of LM training, for one H100/H200, in at most 8 minutes; JSON under $OUT.
#
#   1. set-up: the carried wheels (bench/wheelhouse.sh) into /tmp/site, stand-in modules for
#      spacy/xformers and an `ffmpeg` for AudioCraft's wav writer when the machine lacks them;
#      the environment (nvidia-smi, torch) -> $OUT/env.json
#   2. real-size stand-in weights for `small` (bench/standin_weights.py), built on the CPUs in
#      the background while the GPU runs 3 and 4 -> $OUT/standins.json
#   3. the throughput matrix of small: bf16/fp16 x token cache/encode x accumulation off/on,
#      global batch 16, 30 s (bench/train_throughput.py) -> $OUT/throughput_small.json
#   4. medium: batch 16 at the micro-batch the memory model plans for an 80 GB GPU, with the
#      process capped at 80 GB (79.65 GiB) -> $OUT/medium_fit.json
#   5. the default job end to end: `musicgen-ft train` with model_version=small, 3 epochs x 100
#      updates, batch 16, vocals and labels on (the defaults), on the bundled example dataset,
#      per-stage wall times from its log -> $OUT/e2e.json
# Each step runs under `timeout` within what is left of BENCH_BUDGET_S (default 465 s), so the
# total stays under 8 minutes and what finished is written even when a later step is cut.
# $OUT/steps.json says how each step ended; $OUT/gpu.log is the whole log.
#
# Through the device tool (bench/training.md): command `bash bench/gpu.sh`, carry
# ["work/bench-wheels"], timeout_s 540. Locally (CPU, tiny sizes, a smoke test of the script):
#   OUT=/tmp/gpu-smoke BENCH_SMOKE=1 bash bench/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
: "${OUT:?set OUT to the folder the results go to}"
mkdir -p "$OUT"
BUDGET=${BENCH_BUDGET_S:-465}
SMOKE=${BENCH_SMOKE:-0}
SMOKE_WHEELS=$ROOT/work/bench-wheels
[ "$SMOKE" = 1 ] && SMOKE_WHEELS=""  # the carried wheels are for the device's Python 3.12
WHEELS=${BENCH_WHEELS-$SMOKE_WHEELS}
WORK=${BENCH_WORK:-/tmp/musicgen-bench}
START=$(date +%s)
PY=${PYTHON:-python3}
if [ "$SMOKE" = 1 ] && [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; fi
exec > >(tee -a "$OUT/gpu.log") 2>&1
export PYTHONUNBUFFERED=1 USER=${USER:-bench} HF_HUB_DISABLE_TELEMETRY=1
STEPS=$OUT/steps.jsonl
: >"$STEPS"

left() { echo $((BUDGET - ($(date +%s) - START))); }
# step NAME MAX_SECONDS CMD...: run CMD under timeout min(MAX, time left - 5); record its end.
step() {
  local name=$1 max=$2
  shift 2
  local limit
  limit=$(($(left) - 5))
  [ "$limit" -gt "$max" ] && limit=$max
  if [ "$limit" -lt 10 ]; then
    echo "== $name: skipped, $(left) s left"
    echo "{\"step\": \"$name\", \"rc\": null, \"skipped\": true}" >>"$STEPS"
    return 0
  fi
  echo "== $name (limit ${limit} s, $(left) s left)"
  local t0 rc ms wall
  t0=$(date +%s%N)
  timeout -k 5 "$limit" "$@"
  rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  wall=$((ms / 1000)).$(printf %03d $((ms % 1000)))
  echo "== $name: rc=$rc in ${wall} s"
  echo "{\"step\": \"$name\", \"rc\": $rc, \"wall_s\": $wall, \"limit_s\": $limit, \"timed_out\": $([ $rc = 124 ] || [ $rc = 137 ] && echo true || echo false)}" >>"$STEPS"
  return 0
}
finish() {
  "$PY" - "$STEPS" "$OUT/steps.json" "$START" <<'EOF' || true
import json, sys, time
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
json.dump({"steps": lines, "total_wall_s": time.time() - float(sys.argv[3])},
          open(sys.argv[2], "w"), indent=1)
EOF
  rm -f "$STEPS"
  echo "== total $(($(date +%s) - START)) s"
}
trap finish EXIT

# --- 1. set-up ---------------------------------------------------------------------------
setup() {
  if [ -n "$WHEELS" ] && [ -d "$WHEELS" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site "$WHEELS"/*.whl || return 1
    export PYTHONPATH=/tmp/site:$WHEELS/audiocraft-src${PYTHONPATH:+:$PYTHONPATH}
  fi
  # AudioCraft imports spacy and xformers at module level and never calls them in a MusicGen
  # fine-tune (T5 tokenizes; attention is torch SDPA): empty modules when they are missing.
  mkdir -p /tmp/bench-stubs/xformers /tmp/bench-stubs/spacy
  "$PY" -c "import xformers.ops" 2>/dev/null || {
    echo '"""Stand-in (bench/gpu.sh): AudioCraft imports it; torch SDPA is used."""' \
      >/tmp/bench-stubs/xformers/__init__.py
    echo "" >/tmp/bench-stubs/xformers/ops.py
    XF=1
  }
  "$PY" -c "import spacy" 2>/dev/null || {
    printf '%s\n' '"""Stand-in (bench/gpu.sh): only the LUT whitespace tokenizer loads models."""' \
      'def load(name, *a, **k):' '    raise RuntimeError("spacy is not installed here")' \
      >/tmp/bench-stubs/spacy/__init__.py
    SP=1
  }
  if [ -n "${XF:-}${SP:-}" ]; then export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}/tmp/bench-stubs; fi
  # AudioCraft writes every clip by piping f32le PCM to the ffmpeg binary; without one, a
  # stand-in writes the wav it asks for with soundfile (the only format the pipeline writes).
  if ! command -v ffmpeg >/dev/null 2>&1; then
    mkdir -p /tmp/bench-bin
    cat >/tmp/bench-bin/ffmpeg <<EOF
#!$(command -v "$PY")
"""Stand-in of \`ffmpeg -f f32le -ar SR -ac C -i - -f wav -c:a pcm_s16le OUT\` (bench/gpu.sh)."""
import sys, numpy as np, soundfile as sf
a = sys.argv[1:]
rate, ch = int(a[a.index("-ar") + 1]), int(a[a.index("-ac") + 1])
pcm = np.frombuffer(sys.stdin.buffer.read(), dtype="<f4").reshape(-1, ch)
sf.write(a[-1], pcm, rate, subtype="PCM_16", format="WAV")
EOF
    chmod +x /tmp/bench-bin/ffmpeg
    export PATH=/tmp/bench-bin:$PATH
    echo "setup: no ffmpeg here; using the wav-only stand-in /tmp/bench-bin/ffmpeg"
  fi
  "$PY" - "$OUT/env.json" <<'EOF'
import json, os, platform, shutil, subprocess, sys
env = {"python": platform.python_version(), "pythonpath": os.environ.get("PYTHONPATH", ""),
       "ffmpeg": shutil.which("ffmpeg"), "cpus": os.cpu_count()}
try:
    env["nvidia_smi"] = subprocess.run(["nvidia-smi"], capture_output=True, text=True,
                                       timeout=30).stdout
    env["nvidia_smi_query"] = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit",
         "--format=csv"], capture_output=True, text=True, timeout=30).stdout
except (OSError, subprocess.SubprocessError) as exc:
    env["nvidia_smi"] = f"unavailable: {exc}"
import torch
env.update(torch=torch.__version__, cuda=torch.version.cuda, gpu_visible=torch.cuda.is_available())
if torch.cuda.is_available():
    env["gpu"] = torch.cuda.get_device_name(0)
for mod in ("audiocraft", "dora", "flashy", "demucs", "essentia", "av", "soundfile", "pydantic",
            "transformers", "huggingface_hub", "torchaudio", "onnxruntime"):
    try:
        m = __import__(mod)
        env[f"import_{mod}"] = getattr(m, "__version__", "ok")
    except Exception as exc:  # noqa: BLE001
        env[f"import_{mod}"] = f"FAILED {type(exc).__name__}: {exc}"
json.dump(env, open(sys.argv[1], "w"), indent=1)
print({k: v for k, v in env.items() if k.startswith("import_") or k in ("torch", "gpu")})
EOF
}
SETUP_T0=$(date +%s)
setup
echo "{\"step\": \"setup\", \"rc\": $?, \"wall_s\": $(($(date +%s) - SETUP_T0))}" >>"$STEPS"

if [ "$SMOKE" = 1 ]; then
  SIZE=tiny
  TP_ARGS=(--tiny --steps 1 --warmup 0 --seconds 2)
  JOB=(--epochs 1 --updates_per_epoch 2 --batch_size 2 --sample_prompts 1 --sample_duration 1)
  EXAMPLE_SECONDS=70
else
  SIZE=real
  TP_ARGS=(--shapes small --matmul)
  JOB=(--epochs 3 --updates_per_epoch 100 --batch_size 16)
  EXAMPLE_SECONDS=120  # 3 tracks x 4 chunks of 30 s
fi

# --- 2. stand-in weights, in the background -----------------------------------------------
mkdir -p "$WORK"
(
  export OMP_NUM_THREADS=${BENCH_STANDIN_THREADS:-6}
  step standins 300 "$PY" bench/standin_weights.py --root "$WORK/standins" --variant small \
    --size "$SIZE"
  cp "$WORK/standins/standins.json" "$OUT/standins.json" 2>/dev/null || true
) >"$WORK/standins.log" 2>&1 &
STANDINS_PID=$!

# --- 3. throughput of small -----------------------------------------------------------------
step throughput_small 130 "$PY" bench/train_throughput.py "${TP_ARGS[@]}" \
  --out "$OUT/throughput_small.json"

# --- 4. medium: fits one 80 GB GPU at batch 16? -----------------------------------------------
if [ "$SMOKE" = 1 ]; then
  echo "== medium_fit: skipped (smoke run: no GPU)"
else
  step medium_fit 75 "$PY" bench/train_throughput.py --shapes "" --fit medium \
    --out "$OUT/medium_fit.json"
fi

# --- 5. the default job end to end -----------------------------------------------------------
wait "$STANDINS_PID"
cat "$WORK/standins.log"
if [ -f "$WORK/standins/env.json" ]; then
  step example_dataset 60 "$PY" examples/make_example_dataset.py "$WORK/example.zip" \
    --seconds "$EXAMPLE_SECONDS"
  rm -rf "$WORK/job"
  E2E_T0=$(date +%s)
  mapfile -t JOB_ENV < <("$PY" -c "import json, sys
for k, v in json.load(open(sys.argv[1])).items(): print(f'{k}={v}')" "$WORK/standins/env.json")
  step e2e_default_job 270 env "${JOB_ENV[@]}" \
    "$PY" -m musicgen_ft.cli train --dataset_path "$WORK/example.zip" --model_version small \
    --output_dir "$WORK/job" "${JOB[@]}"
  "$PY" - "$WORK/job" "$OUT/e2e.json" "$STEPS" "$E2E_T0" "${JOB[*]}" <<'EOF'
import json, re, sys, time
from pathlib import Path
job, out, steps_file = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
t0, args = float(sys.argv[4]), sys.argv[5]
ended = [json.loads(line) for line in open(steps_file) if line.strip()]
ended = [e for e in ended if e.get("step") == "e2e_default_job"]
log = (job / "job.log").read_text() if (job / "job.log").is_file() else ""
stages = {m[1]: float(m[2]) for m in re.finditer(r"\[([\w-]+)\] done in ([\d.]+) s", log)}
meta, updates = {}, []
tar = job / "trained_model.tar"
if tar.is_file():  # the work dir (train_steps.jsonl) is removed after success, as for users
    import csv, io, tarfile
    with tarfile.open(tar) as t:
        names = t.getnames()
        meta = json.load(t.extractfile("metadata.json")) if "metadata.json" in names else {}
        if "curves/loss.csv" in names:
            rows = csv.DictReader(io.TextIOWrapper(t.extractfile("curves/loss.csv")))
            updates = [r for r in rows if r["kind"] == "step" and r["split"] == "train"]
epochs = [{"train_ce": h.get("train", {}).get("ce"), "valid_ce": h.get("valid", {}).get("ce"),
           "train_duration_s": h.get("train", {}).get("duration")} for h in meta.get("history", [])]
train_log = (job / "training.log").read_text() if (job / "training.log").is_file() else ""
plan = re.search(r"batch plan: (.*)", log)
json.dump({
    "step": ended[-1] if ended else None, "wall_s": time.time() - t0,
    "args": "model_version=small " + args + " (drop_vocals, auto_labeling: defaults, on)",
    "stages_s": stages, "stages_total_s": sum(stages.values()),
    "total_updates": meta.get("training", {}).get("total_updates"),
    "logged_updates": len(updates), "first_ce": updates[0]["ce"] if updates else None,
    "last_ce": updates[-1]["ce"] if updates else None, "epochs": epochs,
    "training": {k: meta.get("training", {}).get(k) for k in ("batch_plan", "precision", "device")},
    "batch_plan": plan[1] if plan else None,
    "job_log_tail": log[-6000:], "training_log_tail": train_log[-4000:],
}, open(out, "w"), indent=1)
print("e2e stages (s):", stages)
EOF
else
  echo "== e2e_default_job: skipped, no stand-in weights (see the stand-ins' log above)"
  echo '{"step": "e2e_default_job", "rc": null, "skipped": true}' >>"$STEPS"
fi
