#!/usr/bin/env bash
# Shared set-up for run_demo.sh and run_tests.sh: a .venv with the locked dependencies.
#   ./setup_env.sh                        the runtime lock (requirements.lock), what the demo needs
#   ./setup_env.sh requirements-dev.lock  the runtime lock plus what the tests need
# The locks pin every package with its hashes (README: "Dependencies and the lock"). Installs again
# only when the named file (or requirements.txt, which it may include) changed since the last install.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
want="${1:-requirements.lock}"
if [ ! -x "$venv/bin/python" ]; then
  python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
fi
stamp="$venv/.installed-$(cat "$here/$want" "$here/requirements.txt" | md5sum | cut -c1-12)-$(basename "$want")"
if [ ! -f "$stamp" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/$want"
  touch "$stamp"
fi
