#!/usr/bin/env bash
# Installs what the project's commands need on a fresh machine, and nothing when it is already there:
# `just` (from PyPI's rust-just, which ships the binary), `protoc` (Debian's protobuf-compiler, needed by
# the etcd client's build), then builds the local control plane's Go binaries into their cache.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[bootstrap] $*" >&2; }

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v protoc >/dev/null 2>&1; then
  log "installing protoc (protobuf-compiler)"
  sudo_if_needed apt-get update -qq
  sudo_if_needed apt-get install -y -qq protobuf-compiler >/dev/null
fi

if ! command -v just >/dev/null 2>&1; then
  log "installing just"
  python3 -m pip install --quiet --disable-pip-version-check rust-just
  scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  if [ "$(id -u)" -eq 0 ]; then
    ln -sf "$scripts_dir/just" /usr/local/bin/just
  else
    mkdir -p "$HOME/.local/bin" && ln -sf "$scripts_dir/just" "$HOME/.local/bin/just"
    log "add \$HOME/.local/bin to PATH"
  fi
fi

log "control plane binaries: $(bash e2e/build-binaries.sh | tail -n 1)"
