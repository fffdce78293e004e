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

# The real tier's env builds (a no-op once built), and its vLLM server and `vllm run-batch` job
# start, while tier 1 runs: their engines' loads (one to two minutes of CPU each) overlap tests that
# mostly wait on sockets. Both are niced, so tier 1 comes first.
real_pids=()
if [ "${ROLLKIT_REAL_TIER:-1}" != 0 ]; then
  build_log=$(mktemp)
  server_log=$(mktemp)
  url_file=$(mktemp -u)
  batch_dir=$(mktemp -d)
  (
    .venv/bin/python -m tests.real.build_env >"$build_log" 2>&1 || exit 10
    exec nice -n 10 .venv/bin/python -m tests.real.server --url-file "$url_file" >"$server_log" 2>&1
  ) &
  real_pids+=($!)
  (
    # the same build: it holds a lock, so this waits for the one above (whose log reports a failure)
    .venv/bin/python -m tests.real.build_env >/dev/null 2>&1 || exit 10
    exec nice -n 10 .venv/bin/python -m tests.real.batch_job --folder "$batch_dir"
  ) >"$batch_dir/job.log" 2>&1 &
  real_pids+=($!)
  trap 'kill "${real_pids[@]}" 2>/dev/null || true' EXIT
fi

# Tier 1: unit tests and tests against the emulator (pytest-xdist; TEST_WORKERS=2 to cap).
.venv/bin/python -m pytest -n "$workers" --ignore=tests/real --ignore=tests/trainers

# Tier 2: a real vLLM serving a real model.
if [ ${#real_pids[@]} -gt 0 ]; then
  until [ -s "$url_file" ]; do
    if ! kill -0 "${real_pids[0]}" 2>/dev/null; then
      status=0
      wait "${real_pids[0]}" || status=$?
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
  # its tests share the one server (which batches what they send at once) and the one batch job
  ROLLKIT_VLLM_URL=$(cat "$url_file") ROLLKIT_VLLM_BATCH_DIR=$batch_dir tests/real/run_tier.sh -n "$workers"
  kill "${real_pids[@]}" 2>/dev/null || true
  wait "${real_pids[@]}" 2>/dev/null || true
  trap - EXIT
fi

# Tier 3 (on request): real trainers on every export format.
if [ "$trainers" = 1 ]; then
  tests/trainers/run_tier.sh
fi
