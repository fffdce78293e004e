#!/usr/bin/env bash
# Everything CI runs after the demo: set up .venv from the dev lock, lint, then every test tier.
# Arguments go to pytest: ./run_tests.sh tests/test_batch_cycle.py -k resume (add -n 0 for one process).
set -euo pipefail
cd "$(dirname "$0")"
./setup_env.sh requirements-dev.lock
.venv/bin/ruff check .

# Tier 1: unit tests and tests against the emulator, on every core (pytest-xdist; TEST_WORKERS=2 to cap).
.venv/bin/python -m pytest -n "${TEST_WORKERS:-auto}" "$@"

# Further tiers go below, one command each; `set -e` stops at the first that fails.
