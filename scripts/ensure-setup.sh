#!/usr/bin/env bash
# Idempotent set-up used by `npm run demo` and `npm test` before anything else:
#   1. Debian packages the project needs (apt-get update once, then install) when missing;
#   2. `npm ci` when node_modules is missing or older than package-lock.json;
#   3. the oneDNN addon build when its binaries are missing or older than their sources (make
#      decides): one per x86-64 level (v2, v3, v4), so the build runs on and can be copied to any
#      x86-64 machine.
# On a ready machine it touches no network and takes well under a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'retort setup: %s\n' "$*" >&2; }

APT_PACKAGES=(libdnnl-dev g++ make dataset-fashion-mnist fonts-dejavu-core chromium redis-server)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
    say "missing Debian packages: ${missing[*]}; run as root or install sudo"; exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

stamp=node_modules/.retort-lock-stamp
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  say "installing npm dependencies (npm ci; its install step builds the oneDNN addon, a few minutes)"
  # onnxruntime-node's install step would download GPU libraries; its CPU build is in the package.
  # (An environment variable, not an .npmrc key: npm warns about unknown keys on every command.)
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error >&2
  cp package-lock.json "$stamp"
fi

if [ "${RETORT_NATIVE:-1}" != "0" ]; then
  # Builds before the per-level layout left one addon at build/retort_native.node (built with
  # -march=native); remove it so that nothing can load it.
  rm -rf packages/backend-native/build/obj packages/backend-native/build/retort_native.node
  if ! make -s -q -C packages/backend-native 2>/dev/null; then
    say "building the oneDNN addon (packages/backend-native)"
    make -s -j"$(nproc)" -C packages/backend-native >&2
  fi
fi
