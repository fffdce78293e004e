#!/usr/bin/env bash
# Everything CI runs: set up .venv, lint, then every test. `./run_tests.sh --trainers` runs the trainer
# tier instead (tests/trainers/run_tier.sh: real TRL trains on each export; builds its envs once).
set -euo pipefail
cd "$(dirname "$0")"
./setup_env.sh requirements-dev.txt
.venv/bin/ruff check .
if [ "${1:-}" = --trainers ]; then
  shift
  exec tests/trainers/run_tier.sh "$@"
fi
.venv/bin/python -m pytest --ignore=tests/trainers "$@"
