#!/usr/bin/env bash
# Installs everything the build and the tests need, idempotently: the wasm32 target,
# wasm-bindgen-cli and worker-build at the versions Cargo.lock pins, Node 22 with wrangler
# (npm), a Python venv with the official SDKs, and Debian's chromium, redis-server and openssl.
# Safe to run on every CI run: each step is skipped when what it would install is already there.
#
# Usage: scripts/bootstrap.sh [rust|bench]   (`rust`: only the Rust side, as the Worker build
#        needs; `bench`: everything, and the load benchmarks' wrk, nginx and valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# `--locked` first for reproducibility; a lockfile pinning a since-yanked crate makes it fail,
# and then the newest compatible versions are the only way forward.
cargo_install() { cargo install "$@" --locked --force || cargo install "$@" --force; }

installed_version() { # the x.y.z a tool prints for --version, or nothing
  "$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true
}

locked_version() { # the version Cargo.lock pins for crate $1
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding rustup target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

# worker-build's own download of wasm-bindgen from GitHub cannot work offline; the CLI must
# match the wasm-bindgen crate in Cargo.lock exactly.
bindgen_version=$(locked_version wasm-bindgen)
if [ "$(installed_version wasm-bindgen)" != "$bindgen_version" ]; then
  log "installing wasm-bindgen-cli $bindgen_version (takes a few minutes once)"
  cargo_install wasm-bindgen-cli --version "$bindgen_version"
fi
worker_version=$(locked_version worker)
if [ "$(installed_version worker-build)" != "$worker_version" ]; then
  log "installing worker-build $worker_version (takes a few minutes once)"
  cargo_install worker-build --version "$worker_version"
fi

[ "$mode" = rust ] && exit 0

# wrangler 4 needs Node >= 22; the machine may have an older one, so a local Node comes from npm.
if [ ! -x node_modules/.bin/wrangler ] || [ ! -x node_modules/.bin/node ] \
   || ! cmp -s package-lock.json node_modules/.package-lock.json 2>/dev/null; then
  log "installing npm packages (node 22, wrangler, binaryen, openai)"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.package-lock.json
fi

if [ ! -x .venv/bin/python ] || ! cmp -s tests/e2e/requirements.txt .venv/.requirements.txt 2>/dev/null; then
  log "creating .venv with the e2e requirements"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
  cp tests/e2e/requirements.txt .venv/.requirements.txt
fi

# Debian packages the tests run for real, installed with apt where they are missing (only the
# binaries are used; the tests start their own servers and browsers):
# - chromium: tests/e2e/test_status_page.py drives the status page in it through Playwright,
#   launched with `executable_path` (Playwright never downloads a browser of its own);
# - redis-server: tests/limits_redis.rs and tests/limits_native.sh (`[server] limits_store`);
# - openssl: tests/limits_redis.rs makes a test CA for its `rediss://` (TLS) case.
apt_install() {
  local command=$1 package=$2
  command -v "$command" >/dev/null 2>&1 && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    log "$command is missing and this machine has no apt-get: install $package so that $command is on PATH"
    exit 1
  fi
  local as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      as_root=(sudo -n)
    else
      log "$command is missing and installing it needs root: run \`sudo apt-get install $package\` and start again"
      exit 1
    fi
  fi
  log "installing $package (apt)"
  # An image whose package lists were cleaned has none to install from.
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$package" \
    || { "${as_root[@]}" apt-get update -q && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$package"; }
  command -v "$command" >/dev/null 2>&1 || { log "apt-get installed $package, but $command is not on PATH"; exit 1; }
}
apt_install chromium chromium
apt_install redis-server redis-server
apt_install openssl openssl
if [ "$mode" = bench ]; then
  # benches/load/: the load generator, nginx as the native host's floor, and callgrind for
  # instructions.sh.
  apt_install wrk wrk
  apt_install nginx nginx-light
  apt_install valgrind valgrind
fi

log "ok"
