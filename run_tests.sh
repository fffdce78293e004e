#!/usr/bin/env bash
# Everything CI runs after the demo: set up .venv from the dev lock, lint, then every test tier.
#   ./run_tests.sh             lint; the emulator tier while the real-server env builds and its vLLM
#                              server starts in the background; then the real vLLM tier (tests/real)
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
# One worker per core. One more was faster (3 on 2 cores: tier 1 in 396 s instead of 460 s), but
# the pacing tests, which time a client against a metered server, then failed one run in three.
workers=${TEST_WORKERS:-auto}
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest -n "$workers" "$@"
fi

# The real tier's env builds (a no-op once built) and its vLLM server starts while tier 1 runs:
# the server's start (one to two minutes of CPU) overlaps tests that mostly wait on sockets.
real_pid=
if [ "${ROLLKIT_REAL_TIER:-1}" != 0 ]; then
  build_log=$(mktemp)
  server_log=$(mktemp)
  url_file=$(mktemp -u)
  (
    .venv/bin/python -m tests.real.build_env >"$build_log" 2>&1 || exit 10
    # niced: tier 1 comes first; the server's start takes the CPU tier 1 leaves idle
    exec nice -n 10 .venv/bin/python -m tests.real.server --url-file "$url_file" >"$server_log" 2>&1
  ) &
  real_pid=$!
  trap 'kill "$real_pid" 2>/dev/null || true' EXIT
fi

# Tier 1: unit tests and tests against the emulator (pytest-xdist; TEST_WORKERS=2 to cap).
.venv/bin/python -m pytest -n "$workers" --ignore=tests/real --ignore=tests/trainers

# Tier 2: a real vLLM serving a real model.
if [ -n "$real_pid" ]; then
  until [ -s "$url_file" ]; do
    if ! kill -0 "$real_pid" 2>/dev/null; then
      status=0
      wait "$real_pid" || status=$?
      if [ "$status" = 10 ]; then
        cat "$build_log"
        echo "building the real-server env failed" >&2
      else
        cat "$server_log"
        echo "the real tier's vllm serve did not start" >&2
      fi
      exit 1
    fi
    sleep 1
  done
  tail -n 3 "$build_log"
  cat "$server_log"
  ROLLKIT_VLLM_URL=$(cat "$url_file") tests/real/run_tier.sh
  kill "$real_pid" && wait "$real_pid" || true
  trap - EXIT
fi

# Tier 3 (on request): real trainers on every export format.
if [ "$trainers" = 1 ]; then
  tests/trainers/run_tier.sh
fi
