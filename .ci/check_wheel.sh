#!/usr/bin/env bash
# rollkit as a user installs it: build the wheel, install it into a fresh venv outside the clone, and run
# `rollkit pipeline` on the bundled example against `rollkit emulator`, from a folder outside the clone
# with no checkout on sys.path; then check the exit status and the outputs. .ci/run calls it after the
# demo, whose install of requirements.lock leaves pip's cache warm for the one here.
set -euo pipefail
clone=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/rollkit-wheel.XXXXXX")
emulator=
cleanup() { [ -n "$emulator" ] && kill "$emulator" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
unset PYTHONPATH
started=$(date +%s)

python3.11 -m venv "$work/venv" 2>/dev/null || python3 -m venv "$work/venv"
venv=$work/venv/bin
# --no-compile: byte-compiling sympy, matplotlib and pyarrow at install is most of the time; a run compiles what it imports
"$venv/python" -m pip install -q --disable-pip-version-check --no-compile --require-hashes -r "$clone/requirements.lock"
# built from a copy of what the package is made of, so the build leaves nothing in the clone
mkdir "$work/src" && cp -r "$clone/pyproject.toml" "$clone/README.md" "$clone/rollkit" "$work/src/"
"$venv/python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$work/dist" "$work/src"
"$venv/python" -m pip install -q --disable-pip-version-check --no-deps "$work"/dist/rollkit-*.whl
installed=$(date +%s)
echo "wheel: $(basename "$work"/dist/rollkit-*.whl), built and installed with its locked dependencies in $(( installed - started )) s"

cd "$work"
cp -r "$clone/input_data_files/VQAv2" data  # the bundled example, away from the clone
"$venv/python" - "$clone" <<'PY'
import sys
from pathlib import Path

import rollkit

clone = Path(sys.argv[1]).resolve()
where = Path(rollkit.__file__).resolve()
assert clone not in where.parents, f"rollkit imported from the clone: {where}"
assert not any(Path(p or ".").resolve() == clone for p in sys.path), f"the clone is on sys.path: {sys.path}"
assert (where.parent / "prompts" / "rollout.txt").is_file() and (where.parent / "cli" / "detach.sh").is_file()
assert (where.parent / "workflow" / "example.toml").is_file()
PY
"$venv/rollkit" --help >/dev/null

"$venv/rollkit" emulator --port 0 --seed 7 --batch-time-scale 0.1 --answer-key data/questions.jsonl >emulator.log 2>&1 &
emulator=$!
url=
for _ in $(seq 300); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*' emulator.log | head -n1 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat emulator.log >&2; echo "check_wheel: rollkit emulator did not start" >&2; exit 1; }
# the bundled example's run.toml, from the installed package (rollkit/workflow/example.toml)
"$venv/python" -c 'import sys; from rollkit.workflow.config import example_config; print(example_config(*sys.argv[1:]), end="")' \
  "$url/v1" data/questions.jsonl run >run.toml
OPENAI_API_KEY=wheel-check "$venv/rollkit" pipeline --config run.toml >pipeline.log 2>&1 || {
  status=$?; tail -n 30 pipeline.log >&2; echo "check_wheel: rollkit pipeline exited $status" >&2; exit 1; }
"$venv/python" - <<'PY'
import json
from pathlib import Path

import pyarrow.parquet as pq

run = Path("run")
rollouts = [json.loads(line) for line in (run / "rollout_output_data_files/vqav2_example/rollouts.jsonl").open()]
verified = [json.loads(line) for line in (run / "verified_output_data_files/vqav2_example.jsonl").open()]
assert len(rollouts) == 16 and len(verified) == 16, (len(rollouts), len(verified))
assert all(r.get("verification_status") for r in verified)
training = run / "training_data_files/vqav2_example"
rows = sum(pq.read_table(training / name).num_rows for name in ("prm.train.parquet", "prm.val.parquet"))
assert rows > 0 and (training / "sft.jsonl").stat().st_size > 0
assert (run / "report/index.html").stat().st_size > 0
print(f"pipeline outputs: {len(rollouts)} rollouts, {len(verified)} verified, {rows} PRM rows, a report")
PY
echo "check_wheel: done in $(( $(date +%s) - started )) s (the pipeline and its checks: $(( $(date +%s) - installed )) s)"
