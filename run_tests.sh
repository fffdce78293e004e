#!/usr/bin/env bash
# Everything CI runs: set up .venv, lint, then every test.
set -euo pipefail
cd "$(dirname "$0")"
./setup_env.sh requirements-dev.txt
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
