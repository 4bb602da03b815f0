#!/usr/bin/env bash
# `make image` and `make image-test`: build the engine's image (docker when its daemon answers,
# else Debian's buildah: chroot isolation, vfs storage, no daemon) and check it from the inside.
#
#   bash scripts/image.sh build   build musicgen-ft:latest (skipped when it is of this tree)
#   bash scripts/image.sh test    build, then scripts/image_check.py inside the image, offline
#
# Environment: BASE_IMAGE (default python:3.11-slim-bookworm; when BASE_IMAGE is not set and
# that image cannot be pulled, a Debian bookworm base with Python 3.11 is made here with
# mmdebstrap), IMAGE (musicgen-ft:latest), FORCE=1 (rebuild even when up to date), ENGINE
# (docker or buildah), DEBIAN_MIRROR, STORAGE_DRIVER (vfs), BUILDAH_ISOLATION (chroot).
# buildah and mmdebstrap are installed with apt when missing (only `make image*` needs them).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-musicgen-ft:latest}
DEFAULT_BASE=python:3.11-slim-bookworm
LOCAL_BASE=localhost/musicgen-ft-base:bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs} BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
STATE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/musicgen-ft"

say() { echo "image: $*"; }
die() {
  echo "image: $*" >&2
  exit 1
}

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/musicgen-ft-image.XXXXXX")
CTR=""
cleanup() {
  if [ -n "$CTR" ]; then buildah rm "$CTR" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# apt packages for missing commands ("package:command" pairs); sudo when not root.
need_tools() {
  local missing=() pair sudo=""
  for pair in "$@"; do
    command -v "${pair#*:}" >/dev/null 2>&1 || missing+=("${pair%%:*}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "needs ${missing[*]}; install them and retry"
  [ "$(id -u)" = 0 ] || sudo=sudo
  say "installing ${missing[*]} (apt)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

pick_engine() {
  ENGINE=${ENGINE:-}
  if [ -z "$ENGINE" ]; then
    if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
      ENGINE=docker
    else
      ENGINE=buildah
    fi
  fi
  case "$ENGINE" in
    docker) command -v docker >/dev/null 2>&1 || die "ENGINE=docker but no docker command" ;;
    buildah)
      need_tools buildah:buildah
      if [ "$(id -u)" != 0 ]; then need_tools uidmap:newuidmap; fi
      ;;
    *) die "ENGINE must be docker or buildah, not '$ENGINE'" ;;
  esac
}

image_id() {
  if [ "$ENGINE" = docker ]; then
    docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true
  else
    buildah inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null || true
  fi
}

image_label() {
  if [ "$ENGINE" = docker ]; then
    docker image inspect --format "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true
  else
    buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$2\"}}" "$1" \
      2>/dev/null || true
  fi
}

image_size() {
  if [ "$ENGINE" = docker ]; then
    docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%.2f GB", $1 / 1e9}'
  else
    buildah images --format '{{.Size}}' "$1" | head -1
  fi
}

# The build context: the Dockerfile and what it copies, as a clone of this tree has them
# (tracked files, plus untracked ones that git does not ignore), so that .venv, runs and
# caches stay out of it. CONTEXT_HASH names it (and the base asked for).
stage_context() {
  CTX=$WORK/context
  mkdir -p "$CTX"
  local sources
  mapfile -t sources < <(awk 'toupper($1) == "COPY" {
    for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }' Dockerfile)
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard -- Dockerfile "${sources[@]}" \
      | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$CTX"
  else
    tar --exclude=__pycache__ -cf - Dockerfile "${sources[@]}" | tar -xf - -C "$CTX"
  fi
  CONTEXT_HASH=$( (cd "$CTX" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    echo "base ${BASE_IMAGE:-default}") | sha256sum | cut -c1-16)
}

# This machine's pip settings (index, extra indexes, find-links, CA bundle, constraints), for
# pip inside the build: files and find-links folders are copied (hard links where possible)
# into one folder that the build mounts read-only at /mnt, with pip.conf pointing there.
stage_pip_config() {
  PIPDIR=$WORK/pip
  mkdir -p "$PIPDIR"
  if ! command -v python3 >/dev/null 2>&1 || ! python3 - "$PIPDIR" <<'PY'; then
import os
import shutil
import sys
from pathlib import Path

try:
    from pip._internal.configuration import Configuration
except ImportError:
    sys.exit(1)

out = Path(sys.argv[1])


def link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


KEEP = {"index-url", "extra-index-url", "find-links", "cert", "client-cert", "trusted-host",
        "constraint", "timeout", "default-timeout", "retries", "proxy", "no-index", "pre"}
RANK = {"global": 0, "install": 1, ":env:": 2}
conf = Configuration(isolated=False)
conf.load()
best: dict = {}
for key, value in conf.items():
    section, _, name = key.partition(".")
    if section in RANK and name in KEEP and RANK[section] >= best.get(name, (-1, ""))[0]:
        best[name] = (RANK[section], str(value))
lines, passed, skipped = ["[global]"], [], []
for name, (_, value) in sorted(best.items()):
    tokens = []
    for token in value.split():
        local = token[7:] if token.startswith("file://") else token
        if not local.startswith("/"):
            tokens.append(token)
            continue
        src = Path(local)
        dest = out / f"{len(os.listdir(out))}-{src.name}"
        if name in ("index-url", "extra-index-url") or not src.exists():
            skipped.append(f"{name} {token}")
            continue
        if src.is_dir():
            shutil.copytree(src, dest, copy_function=link_or_copy)
        else:
            shutil.copy2(src, dest)
        target = f"/mnt/{dest.name}"
        tokens.append(("file://" + target) if token.startswith("file://") else target)
    if tokens:
        lines.append(f"{name} = {' '.join(tokens)}")
        passed.append(name)
(out / "pip.conf").write_text("\n".join(lines) + "\n")
print("image: pip settings passed into the build: " + (", ".join(passed) or "none"))
for item in skipped:
    print(f"image: not passed (a local index, or missing): {item}")
PY
    say "no pip settings of this machine passed into the build (python3 -m pip not found)"
    rm -rf "$PIPDIR"
    PIPDIR=""
  fi
}

MMDEBSTRAP_ARGS=(
  --variant=minbase --include=python3,python3-venv,ca-certificates
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --customize-hook='chroot "$1" python3 -m venv /opt/python'
  bookworm
)

# A base like python:3.11-slim-bookworm (`python` and `pip` on PATH, pip free to install):
# Debian bookworm's python3 with a venv at /opt/python first on PATH.
make_local_base() {
  local key tar ctr
  key=$(printf '%s\n' "${MMDEBSTRAP_ARGS[@]}" "$DEBIAN_MIRROR" | sha256sum | cut -c1-16)
  if [ "$(image_label "$LOCAL_BASE" musicgen-ft.base)" = "$key" ]; then
    say "base: $LOCAL_BASE (made here earlier with mmdebstrap)"
    return
  fi
  need_tools mmdebstrap:mmdebstrap
  say "making $LOCAL_BASE with mmdebstrap from $DEBIAN_MIRROR (about a minute)"
  tar=$WORK/rootfs.tar
  local security=${DEBIAN_MIRROR%/debian}/debian-security
  if ! mmdebstrap "${MMDEBSTRAP_ARGS[@]}" "$tar" "deb $DEBIAN_MIRROR bookworm main" \
    "deb $DEBIAN_MIRROR bookworm-updates main" "deb $security bookworm-security main" \
    </dev/null >"$WORK/mmdebstrap.log" 2>&1; then
    tail -n 20 "$WORK/mmdebstrap.log" >&2
    die "mmdebstrap failed (log above)"
  fi
  ctr=$(buildah from scratch)
  buildah add --quiet "$ctr" "$tar" / >/dev/null
  local path=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  buildah config --env PATH="$path" \
    --env LANG=C.UTF-8 --cmd python3 --label musicgen-ft.base="$key" "$ctr"
  buildah commit --quiet --rm "$ctr" "$LOCAL_BASE" >/dev/null
  rm -f "$tar"
}

# Docker's reading of a short image name (buildah here has no search registries):
# python:3.11 -> docker.io/library/python:3.11, me/x -> docker.io/me/x.
qualify() {
  local first=${1%%/*}
  if [ "$first" = "$1" ]; then
    echo "docker.io/library/$1"
  elif [[ "$first" == *.* || "$first" == *:* || "$first" == localhost ]]; then
    echo "$1"
  else
    echo "docker.io/$1"
  fi
}

# Sets BASE: BASE_IMAGE when given (present or pullable, else an error), else the default,
# else a base made here.
pick_base() {
  if [ -n "${BASE_IMAGE:-}" ]; then
    BASE=$BASE_IMAGE
    [ "$ENGINE" = buildah ] && BASE=$(qualify "$BASE")
    if [ "$ENGINE" = buildah ] && [ -z "$(image_id "$BASE")" ] \
      && ! buildah pull -q "$BASE" >/dev/null 2>"$WORK/pull.err"; then
      die "BASE_IMAGE=$BASE is not here and cannot be pulled: $(grep -m1 . "$WORK/pull.err")"
    fi
    return
  fi
  if [ "$ENGINE" = docker ]; then
    BASE=$DEFAULT_BASE
    return
  fi
  BASE=$(qualify "$DEFAULT_BASE")
  if [ -n "$(image_id "$BASE")" ] || timeout 300 buildah pull -q "$BASE" >/dev/null 2>&1; then
    return
  fi
  say "$DEFAULT_BASE cannot be pulled (no registry reachable): using a local Debian base"
  make_local_base
  BASE=$LOCAL_BASE
}

build() {
  pick_engine
  stage_context
  if [ "${FORCE:-0}" != 1 ] && [ -n "$(image_id "$IMAGE")" ] \
    && [ "$(image_label "$IMAGE" musicgen-ft.context)" = "$CONTEXT_HASH" ]; then
    say "$IMAGE is up to date with this tree ($ENGINE; FORCE=1 rebuilds)"
    return
  fi
  pick_base
  local old start
  old=$(image_id "$IMAGE")
  say "building $IMAGE with $ENGINE from $BASE (a few minutes: pip installs the whole stack)"
  start=$(date +%s)
  if [ "$ENGINE" = docker ]; then
    DOCKER_BUILDKIT=1 docker build --build-arg BASE_IMAGE="$BASE" \
      --label musicgen-ft.context="$CONTEXT_HASH" -t "$IMAGE" "$CTX"
  else
    stage_pip_config
    local mounts=()
    [ -n "$PIPDIR" ] && mounts=(--volume "$PIPDIR:/mnt:ro")
    buildah bud --pull=false --build-arg BASE_IMAGE="$BASE" \
      --label musicgen-ft.context="$CONTEXT_HASH" "${mounts[@]}" -t "$IMAGE" "$CTX"
    # A rebuild leaves the previous image untagged; drop it (vfs keeps whole copies).
    if [ -n "$old" ] && [ "$old" != "$(image_id "$IMAGE")" ]; then
      buildah rmi "$old" >/dev/null 2>&1 || true
    fi
  fi
  local seconds=$(($(date +%s) - start))
  mkdir -p "$STATE_DIR"
  echo "$(image_id "$IMAGE") $seconds $BASE" >"$STATE_DIR/image-build.txt"
  say "built $IMAGE in $seconds s ($ENGINE, base $BASE); size $(image_size "$IMAGE")"
}

# The image's configuration, read from outside: user, volumes, working dir, no secrets.
check_config() {
  local config
  if [ "$ENGINE" = docker ]; then
    config=$(docker image inspect "$IMAGE")
  else
    config=$(buildah inspect --type image "$IMAGE")
  fi
  python3 - "$config" <<'PY' || die "the image's configuration is not as promised (above)"
import json
import sys

inspected = json.loads(sys.argv[1])
# docker: a list of images with .Config; buildah: one object with the OCI config.
c = inspected[0]["Config"] if isinstance(inspected, list) else inspected["OCIv1"]["config"]
env = dict(e.split("=", 1) for e in c.get("Env") or [])
problems = []
if (c.get("User") or "root").split(":")[0] in ("", "root", "0"):
    problems.append(f"user {c.get('User')!r} is root")
if sorted(c.get("Volumes") or {}) != ["/data"]:
    problems.append(f"volumes {sorted(c.get('Volumes') or {})}, not ['/data']")
if c.get("WorkingDir") != "/src":
    problems.append(f"working dir {c.get('WorkingDir')!r}, not '/src'")
secret = [k for k in env if any(w in k for w in ("TOKEN", "SECRET", "PASSWORD"))]
if secret:
    problems.append(f"secrets in the environment: {secret}")
for p in problems:
    print(f"image: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"image: config ok: user {c['User']}, volume /data, working dir /src, no token in env")
PY
}

# scripts/image_check.py inside a container of the image, as its user, with no network but
# loopback (a network namespace of its own; docker: --network none).
run_checks() {
  local checks=$WORK/checks
  mkdir -p "$checks"
  cp scripts/image_check.py "$checks/"
  if [ "$ENGINE" = docker ]; then
    docker run --rm --network none -v "$checks:/mnt/checks:ro" "$IMAGE" \
      python /mnt/checks/image_check.py
    return
  fi
  CTR=$(buildah from --pull=never -q "$IMAGE")
  local cmd=(buildah run -v "$checks:/mnt/checks:ro" "$CTR" -- python /mnt/checks/image_check.py)
  if unshare --net true 2>/dev/null && command -v ip >/dev/null 2>&1; then
    unshare --net sh -c 'ip link set lo up && exec "$@"' sh "${cmd[@]}"
  else
    say "cannot make a network namespace here: checks run with the host's network"
    "${cmd[@]}"
  fi
}

image_test() {
  local start=$(date +%s) built_s=""
  build
  check_config
  local record=$STATE_DIR/image-build.txt
  if [ -f "$record" ] && [ "$(cut -d' ' -f1 "$record")" = "$(image_id "$IMAGE")" ]; then
    built_s=$(cut -d' ' -f2 "$record")
  fi
  say "checks inside $IMAGE (offline; a few minutes)"
  local checks_start=$(date +%s)
  run_checks || die "checks inside the image failed (above)"
  say "passed: build ${built_s:-?} s, image size $(image_size "$IMAGE"), checks" \
    "$(($(date +%s) - checks_start)) s, make image-test $(($(date +%s) - start)) s in all"
}

case "${1:-}" in
  build) build ;;
  test) image_test ;;
  *) die "usage: bash scripts/image.sh build|test" ;;
esac
