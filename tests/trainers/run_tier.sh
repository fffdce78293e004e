#!/usr/bin/env bash
# The trainer tier: build the trainer envs in the cache if they are not there ($ROLLKIT_CACHE, else
# ~/.cache/rollkit; a no-op when built) and the real-server tier's model when its builder is in the
# clone, then train 2 optimizer steps on every export with real TRL (ROLLKIT_TRAINER_TIER=1: a missing
# env or model fails instead of skipping). The tests run two at a time (pytest-xdist), one thread each.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || ./setup_env.sh requirements-dev.lock
started=$(date +%s)
.venv/bin/python tests/trainers/envs.py build
if [ -f tests/real/build_env.py ]; then
  .venv/bin/python -m tests.real.build_env --model-only
fi
built=$(date +%s)
parallel=()  # pytest-xdist where the venv has it (not a declared dependency)
if .venv/bin/python -c "import xdist" 2>/dev/null; then parallel=(-n 2); fi
ROLLKIT_TRAINER_TIER=1 .venv/bin/python -m pytest tests/trainers "${parallel[@]}" -rP "$@"
echo "trainer tier: build/check $((built - started)) s, tests $(($(date +%s) - built)) s"
