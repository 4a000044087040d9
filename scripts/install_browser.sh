#!/usr/bin/env bash
# Install the headless browser the browser test group (pytest -m browser) drives.
#
# Playwright is already a test dependency (pip); its own browser download (`playwright install`)
# needs the internet, so we use Debian's `chromium` package instead and point Playwright at it
# with executable_path="/usr/bin/chromium". Idempotent: does nothing when chromium is there.
#
#   sudo scripts/install_browser.sh          # or as root in CI
#   CHROMIUM=/path/to/chromium pytest -m browser   # use another binary
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    echo "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: no apt-get here; install Chromium yourself and set CHROMIUM=/path/to/chromium" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install_browser.sh: need root (or sudo) to apt-get install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# fonts so that pages render text (Playwright screenshots/selectors do not need more)
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
