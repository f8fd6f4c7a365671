#!/usr/bin/env bash
# axe-core, the accessibility engine of the report's browser tests (tests/test_report_browser.py), into
# .venv/axe (npm, pinned). Once installed the tests use it offline. Idempotent: seconds when present.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.11.0
dest=.venv/axe
pkg=$dest/node_modules/axe-core
if [ -f "$pkg/axe.min.js" ] && grep -q "\"version\": \"$VERSION\"" "$pkg/package.json"; then
  exit 0
fi
command -v npm >/dev/null || { echo "npm is missing: apt-get install -y npm (or set DLNCHECK_AXE to an axe.min.js)"; exit 1; }
mkdir -p "$dest"
npm install --prefix "$dest" --no-save --no-audit --no-fund --loglevel=error "axe-core@$VERSION"
test -f "$pkg/axe.min.js"
