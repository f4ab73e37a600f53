#!/usr/bin/env bash
# End-to-end browser test of `tinct serve` and `tinct study`: headless Chromium (the Debian
# package /usr/bin/chromium) driven by playwright-core. Builds nothing: run
# `cargo build --release` first (or set TINCT_BIN to the binary). Installs the npm
# dependencies here, then runs e2e.test.mjs with node's test runner.
# Skips with a message (exit 0) when node, npm or chromium is missing or npm cannot install.
# Screenshots go to $E2E_OUT (default: a temporary folder, printed).
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(cd ../.. && pwd)"
export TINCT_BIN="${TINCT_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tinct}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if [ ! -x "$TINCT_BIN" ]; then
  echo "e2e: $TINCT_BIN not found; run cargo build --release first" >&2
  exit 1
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "e2e skipped: node/npm not installed"
  exit 0
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "e2e skipped: chromium not installed (apt-get install -y chromium)"
  exit 0
fi
if [ ! -d node_modules/playwright-core ]; then
  if ! timeout 300 npm ci --no-audit --no-fund --loglevel=error; then
    echo "e2e skipped: npm ci failed (no registry?)"
    exit 0
  fi
fi
exec timeout 900 node --test --test-reporter=spec e2e.test.mjs
