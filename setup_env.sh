#!/usr/bin/env bash
# Shared set-up for run_demo.sh and run_tests.sh: a .venv with the pinned dependencies.
# Re-installs only when a requirements file changed since the last install.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
want="${1:-requirements.txt}"
if [ ! -x "$venv/bin/python" ]; then
  python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
fi
stamp="$venv/.installed-$(cat "$here"/requirements*.txt | md5sum | cut -c1-12)-$(basename "$want")"
if [ ! -f "$stamp" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/$want"
  touch "$stamp"
fi
