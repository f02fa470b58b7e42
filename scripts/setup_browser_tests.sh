#!/usr/bin/env bash
# Sets up the web app's browser test: Debian's chromium and Playwright (from PyPI) in
# ./.venv-playwright. The next `cmake --preset release` then registers the test `webapp_browser`
# (label "browser"), which drives /usr/bin/chromium (Playwright never downloads a browser here).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(chromium python3-venv python3-pip)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ ! -x .venv-playwright/bin/python ]; then
  python3 -m venv .venv-playwright
fi
.venv-playwright/bin/python -c "import playwright" 2>/dev/null ||
  .venv-playwright/bin/pip install -q "playwright>=1.40"
echo "browser tests ready: re-run 'cmake --preset release' to register them"
