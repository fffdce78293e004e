#!/usr/bin/env bash
# Install Debian's chromium for the browser tests, unless it is already there. Safe to run again.
# CI calls it, then runs the tests with ROLLKIT_BROWSER_TESTS=1 so a missing browser fails, not skips.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version
