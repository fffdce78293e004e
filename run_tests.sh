#!/usr/bin/env bash
# Everything CI runs after the demo: set up .venv from the dev lock, lint, then every test tier.
#   ./run_tests.sh             lint; the emulator tier on every core while the real-server env builds
#                              in the background; then the real vLLM tier (tests/real)
#   ./run_tests.sh --trainers  the same, then the real-trainer tier (tests/trainers: TRL on each export)
#   ./run_tests.sh ARGS...     lint, then pytest ARGS alone (add -n 0 for one process)
# ROLLKIT_REAL_TIER=0 leaves the real-server tier out. Both heavy tiers keep their envs outside the
# clone, in $ROLLKIT_CACHE (default ~/.cache/rollkit), built once and reused.
set -euo pipefail
cd "$(dirname "$0")"
./setup_env.sh requirements-dev.lock
.venv/bin/ruff check .
trainers=0
if [ "${1:-}" = "--trainers" ]; then
  trainers=1
  shift
fi
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-auto}" "$@"
fi

build_pid=
if [ "${ROLLKIT_REAL_TIER:-1}" != 0 ]; then
  build_log=$(mktemp)
  .venv/bin/python -m tests.real.build_env >"$build_log" 2>&1 &
  build_pid=$!
  trap 'kill "$build_pid" 2>/dev/null || true' EXIT
fi

# Tier 1: unit tests and tests against the emulator, on every core (pytest-xdist; TEST_WORKERS=2 to cap).
.venv/bin/python -m pytest -n "${TEST_WORKERS:-auto}" --ignore=tests/real --ignore=tests/trainers

# Tier 2: a real vLLM serving a real model.
if [ -n "$build_pid" ]; then
  if ! wait "$build_pid"; then
    cat "$build_log"
    echo "building the real-server env failed" >&2
    exit 1
  fi
  trap - EXIT
  tail -n 3 "$build_log"
  tests/real/run_tier.sh
fi

# Tier 3 (on request): real trainers on every export format.
if [ "$trainers" = 1 ]; then
  tests/trainers/run_tier.sh
fi
