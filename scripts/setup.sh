#!/usr/bin/env bash
# Idempotent set-up of a fresh machine: system packages and a pinned virtualenv at .venv.
# Quick when already done: a stamp keyed on the requirement files skips the pip work.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}
AUDIOCRAFT_VERSION=1.3.0

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
# PostgreSQL server binaries: the tests start their own server for the shared queue.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
# Headless Chromium and its WebDriver: the browser tests of the web page.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# A one-node SLURM cluster (munge auth): the tests of MUSICGEN_FT_LAUNCHER=slurm start their own.
[ -x /usr/sbin/slurmctld ] || need_apt+=(slurmctld)
[ -x /usr/sbin/slurmd ] || need_apt+=(slurmd)
command -v sbatch >/dev/null 2>&1 || need_apt+=(slurm-client)
[ -x /usr/sbin/munged ] || need_apt+=(munge)
if [ "${MUSICGEN_FT_BENCH:-0}" = 1 ]; then
  command -v fluidsynth >/dev/null 2>&1 || need_apt+=(fluidsynth)
  [ -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need_apt+=(fluid-soundfont-gm)
  # The demo songs of LMMS and the program to render them (bench/labels_lmms.py).
  command -v lmms >/dev/null 2>&1 || need_apt+=(lmms)
  # MMA, its standard library of accompaniment grooves (bench/labels_mma.py).
  command -v mma >/dev/null 2>&1 || need_apt+=(mma)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

stamp_src=$( (cat requirements.txt requirements-nodeps.txt requirements-dev.txt scripts/setup.sh \
  pyproject.toml; cat requirements-lock.txt 2>/dev/null || true) | sha256sum | cut -c1-16)
STAMP="$VENV/.setup-$stamp_src"
if [ -e "$STAMP" ] && "$VENV/bin/python" -c "import audiocraft, musicgen_ft" 2>/dev/null; then
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
export PIP_NO_WARN_SCRIPT_LOCATION=1
# Some images point pip at local mirrors that may be empty; those warnings are noise.
pip_() { "${PIP[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
CONSTRAINTS=()
[ -f requirements-lock.txt ] && CONSTRAINTS=(-c requirements-lock.txt)

echo "setup: installing pinned Python packages into .venv (first run: a few minutes)"
pip_ install "${CONSTRAINTS[@]}" -r requirements.txt -r requirements-dev.txt
pip_ install --no-deps -r requirements-nodeps.txt
# torchaudio's compiled extension only loads beside the torch build it was made for (a
# CUDA build). Beside another torch, drop it so torchaudio uses its pure-Python paths.
if ! "$VENV/bin/python" -c "import torchaudio" >/dev/null 2>&1; then
  echo "setup: torchaudio's compiled extension does not match this torch; using its Python paths"
  rm -f "$VENV"/lib/python3*/site-packages/torchaudio/lib/*.so
  "$VENV/bin/python" -c "import torchaudio"
fi

# AudioCraft ships as an sdist whose Hydra config/ tree pip does not install. Install the
# extracted sdist in editable mode so that audiocraft/../config resolves.
SRC="$VENV/src"
AC_DIR="$SRC/audiocraft-$AUDIOCRAFT_VERSION"
if [ ! -d "$AC_DIR/config" ]; then
  mkdir -p "$SRC"
  pip_ download --no-deps --no-binary :all: "audiocraft==$AUDIOCRAFT_VERSION" -d "$SRC"
  tar -xzf "$SRC/audiocraft-$AUDIOCRAFT_VERSION.tar.gz" -C "$SRC"
fi
pip_ install --no-deps --no-build-isolation -e "$AC_DIR" 2>/dev/null \
  || pip_ install --no-deps -e "$AC_DIR"
pip_ install --no-deps -e "$ROOT"

rm -f "$VENV"/.setup-*
touch "$STAMP"
echo "setup: done ($VENV)"
