#!/usr/bin/env bash
# The Python packages bench/gpu.sh needs on the device machine and that its image lacks, built
# here into an ignored folder (default work/bench-wheels, ignored by .gitignore's /work/) to be
# carried with the device tool's `run` (carry: ["work/bench-wheels"]; 64 MiB per call with the
# working tree). The device has Python 3.12, torch 2.11 + torchaudio 2.11 (a CUDA pair), numpy,
# einops, transformers, huggingface_hub, sentencepiece, scipy, onnx, onnxruntime, matplotlib,
# httpx ... (/work/.library/device/KINDS.md), but not AudioCraft's own stack nor ours:
#
# - binary wheels for CPython 3.12 manylinux x86-64: av (AudioCraft reads wav chunks through it),
#   essentia (key and BPM labels), soundfile, soxr, pydantic-core, cffi;
# - pure-Python wheels built here (several are sdists only): flashy, dora-search, hydra-core,
#   omegaconf, antlr4, julius, num2words, docopt, demucs, submitit, treetable, retrying,
#   colorlog, librosa, pooch, platformdirs, decorator, audioread, pyloudnorm, pydantic,
#   annotated-types, typing-inspection, pycparser;
# - AudioCraft 1.3.0's package and Hydra config/ tree, copied from the extracted sdist that
#   scripts/setup.sh installs (audiocraft-src/, put on PYTHONPATH: config/ must sit beside it).
#
# Not carried: spacy (~130 MB with thinc/blis) and xformers, which AudioCraft imports at module
# level but a MusicGen fine-tune never calls (T5 tokenizes; attention is torch SDPA): gpu.sh
# writes empty stand-in modules for them when they are missing. Versions: requirements-lock.txt.
#
#   bash bench/wheelhouse.sh [DIR]      # prints the total size; fails above 60 MiB
# WHEELHOUSE_PYTHON=3.11 builds the same set for this machine's Python (to rehearse the device's
# bare stack here: bench/training.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-work/bench-wheels}
PY=.venv/bin/python
AC_SRC=.venv/src/audiocraft-1.3.0
PYVER=${WHEELHOUSE_PYTHON:-3.12}
CP=cp${PYVER/./}
LIMIT=$((60 * 1024 * 1024))  # leaves room for the working tree under the 64 MiB per call

BINARY=(av essentia soundfile soxr pydantic_core cffi)
PURE=(flashy dora-search hydra-core omegaconf antlr4-python3-runtime julius num2words docopt
  demucs submitit treetable retrying colorlog librosa pooch platformdirs decorator audioread
  pyloudnorm pydantic annotated-types typing-inspection pycparser)

pin() {  # NAME==VERSION from the lock (names compared case- and -/_-insensitively)
  local want
  want=$(echo "$1" | tr 'A-Z_' 'a-z-')
  local line
  line=$(tr 'A-Z_' 'a-z-' <requirements-lock.txt | grep -E "^${want}==" | head -1 || true)
  [ -n "$line" ] || { echo "wheelhouse: $1 is not in requirements-lock.txt" >&2; exit 1; }
  echo "$line"
}

[ -d "$AC_SRC/audiocraft" ] && [ -d "$AC_SRC/config" ] || {
  echo "wheelhouse: $AC_SRC is missing; run scripts/setup.sh first" >&2
  exit 1
}
rm -rf "$OUT"
mkdir -p "$OUT"
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

pins=()
for name in "${BINARY[@]}"; do pins+=("$(pin "$name")"); done
quiet "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d "$OUT" "${pins[@]}"

pins=()
for name in "${PURE[@]}"; do pins+=("$(pin "$name")"); done
quiet "$PY" -m pip wheel -q --disable-pip-version-check --no-deps -w "$OUT" "${pins[@]}"
for whl in "$OUT"/*.whl; do  # the pure set must really be pure: it was built for 3.11 here
  case "$whl" in
    *-none-any.whl|*"$CP"-*|*abi3*|*py2.py3-none-manylinux*) ;;
    *) echo "wheelhouse: $whl is not usable on CPython $PYVER" >&2; exit 1 ;;
  esac
done

mkdir -p "$OUT/audiocraft-src"
cp -r "$AC_SRC/audiocraft" "$AC_SRC/config" "$OUT/audiocraft-src/"
find "$OUT/audiocraft-src" -name __pycache__ -type d -prune -exec rm -rf {} +

total=$(du -sb "$OUT" | cut -f1)
echo "wheelhouse: $(ls "$OUT"/*.whl | wc -l) wheels + audiocraft-src in $OUT: $((total / 1024)) KiB"
if [ "$total" -gt "$LIMIT" ]; then
  echo "wheelhouse: over $((LIMIT / 1024 / 1024)) MiB: the device call would refuse it" >&2
  exit 1
fi
