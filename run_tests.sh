#!/usr/bin/env bash
# Everything CI runs: set up .venv, lint, then every test. With no arguments the real-server tier
# (tests/real: a real vLLM serving a real model) runs last, its env built in the background while
# the emulator tests run; ROLLKIT_REAL_TIER=0 leaves it out. Arguments go to pytest alone.
set -euo pipefail
cd "$(dirname "$0")"
./setup_env.sh requirements-dev.txt
.venv/bin/ruff check .
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
build_pid=
if [ "${ROLLKIT_REAL_TIER:-1}" != 0 ]; then
  build_log=$(mktemp)
  .venv/bin/python -m tests.real.build_env >"$build_log" 2>&1 &
  build_pid=$!
  trap 'kill "$build_pid" 2>/dev/null || true' EXIT
fi
.venv/bin/python -m pytest --ignore=tests/real
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
