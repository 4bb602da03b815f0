#!/usr/bin/env bash
# The one install path of the engine's images. The Dockerfile runs this script; cog.yaml
# declares the same steps for `cog build` (its system_packages, python_requirements and run:
# lines are written from this script's plan, and tests/test_image.py fails when they differ).
# It installs into the Python on PATH (`pip`, `python`), as Cog does, not into a venv.
#
#   bash scripts/install.sh --install          run the steps (as root, inside an image build)
#   bash scripts/install.sh --plan             print the steps, one per line, run nothing
#   bash scripts/install.sh --write-cog-yaml   rewrite cog.yaml's install lines from the plan
#
# The pins live in requirements*.txt. What Cog cannot do the same way: it installs
# requirements.txt without requirements-lock.txt as constraints (it copies no other file into
# the build before the run: lines), so `cog build` resolves the unpinned transitive
# dependencies afresh, where this script applies the lock.
set -euo pipefail
cd "$(dirname "$0")/.."

# ffmpeg: AudioCraft's audio_write pipes every format, wav included, through the ffmpeg binary.
# libsndfile1: soundfile's library on platforms where its wheel does not bundle one.
SYSTEM_PACKAGES=(ffmpeg libsndfile1)
REQUIREMENTS=requirements.txt
CONSTRAINTS=requirements-lock.txt
NODEPS=requirements-nodeps.txt
# AudioCraft ships as an sdist only; its metadata pins torch 2.1, av 11 and numpy<2, so it is
# installed --no-deps, its runtime dependencies being in requirements.txt.
AUDIOCRAFT_VERSION=1.3.0
AUDIOCRAFT_SRC=/opt/src

die() {
  echo "install.sh: $*" >&2
  exit 1
}

for f in "$REQUIREMENTS" "$NODEPS"; do
  [ -f "$f" ] || die "$f is missing (run from a checkout of the project)"
done
nodeps=$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$NODEPS" | grep -v '^$' | tr '\n' ' ')
nodeps=${nodeps% }
[ -n "$nodeps" ] || die "$NODEPS lists no package"

# The steps after requirements.txt, each one shell command (Cog's run: items are single lines),
# with the comment that goes above it in cog.yaml.
COMMENTS=()
RUNS=()
step() {
  COMMENTS+=("$1")
  RUNS+=("$2")
}
# (Adjacent quoted strings joined by a backslash-newline are one word: each step is one line.)
step "The pins of $NODEPS (torchaudio, xformers), without their (conflicting) dependencies." \
  "pip install --no-deps $nodeps"
step "torchaudio's compiled extension only loads beside the torch build it was made for;"\
" beside another one, drop it so that torchaudio runs its pure-Python paths"\
" (all AudioCraft needs)." \
  'python -c "import torchaudio" 2>/dev/null'\
' || { rm -f "$(pip show torchaudio | sed -n "s/^Location: //p")"/torchaudio/lib/*.so'\
' && python -c "import torchaudio"'\
' && echo "torchaudio: using its Python paths (compiled extension removed)"; }'
ac=audiocraft-$AUDIOCRAFT_VERSION
step "AudioCraft is an sdist whose Hydra config/ tree pip does not install: install the"\
" extracted sdist in editable mode so that audiocraft/../config resolves." \
  "mkdir -p $AUDIOCRAFT_SRC && cd $AUDIOCRAFT_SRC"\
" && pip download --no-deps --no-binary :all: audiocraft==$AUDIOCRAFT_VERSION -d ."\
" && tar -xzf $ac.tar.gz && rm $ac.tar.gz"\
" && pip install --no-deps -e $AUDIOCRAFT_SRC/$ac"\
" && test -f $AUDIOCRAFT_SRC/$ac/config/config.yaml"

plan() {
  printf 'system_packages\t%s\n' "${SYSTEM_PACKAGES[*]}"
  printf 'python_requirements\t%s\n' "$REQUIREMENTS"
  printf 'constraints\t%s\n' "$CONSTRAINTS"
  local cmd
  for cmd in "${RUNS[@]}"; do
    printf 'run\t%s\n' "$cmd"
  done
}

# One YAML single-quoted scalar: quotes doubled, nothing else is special inside.
yaml_quote() {
  local s=${1//\'/\'\'}
  printf "'%s'" "$s"
}

# Replace the build: keys that this script owns, keeping every other line of cog.yaml.
write_cog_yaml() {
  local file=cog.yaml tmp block i
  [ -f "$file" ] || die "$file is missing"
  grep -q '^  system_packages:' "$file" && grep -q '^  python_requirements:' "$file" \
    && grep -q '^  run:' "$file" \
    || die "$file needs build.system_packages, build.python_requirements and build.run keys"
  block=$(mktemp)
  tmp=$(mktemp)
  {
    echo "  # system_packages, python_requirements and run: written by"
    echo "  # \`bash scripts/install.sh --write-cog-yaml\` (the Dockerfile runs the same script)."
    echo "  system_packages:"
    for i in "${SYSTEM_PACKAGES[@]}"; do echo "    - $i"; done
    echo "  python_requirements: $REQUIREMENTS"
    echo "  run:"
    for i in "${!RUNS[@]}"; do
      echo "${COMMENTS[$i]}" | fold -s -w 92 | sed -e 's/[[:space:]]*$//' -e 's/^/    # /'
      echo "    - $(yaml_quote "${RUNS[$i]}")"
    done
  } >"$block"
  # Drop the old keys (and the generated comment above them), insert the block where
  # system_packages stood.
  awk -v block="$block" '
    function flush() { while ((getline line < block) > 0) print line; close(block) }
    /^  # system_packages, python_requirements and run: written by/ { skipc = 1; next }
    skipc && /^  # / { next }
    { skipc = 0 }
    /^  (system_packages|python_requirements|run):/ {
      if (!done) { flush(); done = 1 }
      skip = 1; next
    }
    skip && (/^    / || /^$/) { next }
    { skip = 0; print }
  ' "$file" >"$tmp"
  cat "$tmp" >"$file" # keeps the file's mode
  rm -f "$block" "$tmp"
  echo "install.sh: wrote $file's system_packages, python_requirements and run:"
}

case "${1:-}" in
  --plan)
    plan
    ;;
  --write-cog-yaml)
    write_cog_yaml
    ;;
  --install)
    [ "$(id -u)" = 0 ] || die "--install runs as root, inside an image build"
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off PIP_ROOT_USER_ACTION=ignore \
      PIP_NO_WARN_SCRIPT_LOCATION=1
    command -v pip >/dev/null 2>&1 || die "no pip on PATH"
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: the images are Debian-based"
    echo "install.sh: system packages: ${SYSTEM_PACKAGES[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${SYSTEM_PACKAGES[@]}" >/dev/null
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
    lock=()
    [ -f "$CONSTRAINTS" ] && lock=(-c "$CONSTRAINTS")
    echo "+ pip install ${lock[*]} -r $REQUIREMENTS"
    pip install "${lock[@]}" -r "$REQUIREMENTS"
    for cmd in "${RUNS[@]}"; do
      echo "+ $cmd"
      sh -ec "$cmd"
    done
    echo "install.sh: done"
    ;;
  *)
    die "${1:+unknown option '$1': }use --install (inside an image build), --plan or" \
      "--write-cog-yaml"
    ;;
esac
