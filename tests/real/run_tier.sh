#!/usr/bin/env bash
# The real-server tier: build the vLLM venv and the model in the cache if they are not there
# ($ROLLKIT_CACHE, else ~/.cache/rollkit; a no-op when built), then run tests/real against a real
# `vllm serve`, which must run (ROLLKIT_REAL_TIER=1: a missing env fails instead of skipping).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || ./setup_env.sh requirements-dev.lock
started=$(date +%s)
.venv/bin/python -m tests.real.build_env
built=$(date +%s)
ROLLKIT_REAL_TIER=1 .venv/bin/python -m pytest tests/real "$@"
echo "real tier: build/check $((built - started)) s, tests $(($(date +%s) - built)) s"
