#!/usr/bin/env bash
# The whole pipeline on the bundled VQAv2 example against the built-in emulator: no key, no cost.
# Installs what it needs into .venv first. Outputs land in demo_output/.
set -euo pipefail
cd "$(dirname "$0")"
./setup_env.sh requirements.lock
py=.venv/bin/python
out=demo_output
rm -rf "$out" && mkdir -p "$out"

"$py" -m rollkit.emulator --port 0 --seed 7 --answer-key input_data_files/VQAv2/questions.jsonl \
  >"$out/emulator.log" 2>&1 &
emulator=$!
trap 'kill "$emulator" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$out/emulator.log" | head -n1 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || { echo "the emulator did not start; see $out/emulator.log" >&2; exit 1; }
echo "emulator at $url"
# The emulator accepts any key; this one only exists for the demo.
export OPENAI_API_KEY=demo-key

echo "== reject.py: sample 4 answers per question, score them, keep the best"
"$py" reject.py --input_file input_data_files/VQAv2/rejection_example.json \
  --output_file "$out/final_results.jsonl" --generator_model demo-generator --scorer_model demo-judge \
  --base-url "$url/v1" --answers_per_question 4 --concurrency 8 --min-score 7 \
  --sft-output "$out/sft.jsonl"

echo
echo "== rollout.py: 2 structured rollouts per question, each step scored by 4 Monte-Carlo continuations"
"$py" rollout.py --input input_data_files/VQAv2/questions.jsonl --output "$out/rollouts.jsonl" \
  --base-url "$url/v1" --model_name demo-policy --dataset-name vqav2 --num-rollouts 2 --num-mc 4 \
  --concurrency 8

echo
echo "== step-wise verification through the Batch API: pack, submit, poll, download, map back"
"$py" merge_and_map_batch.py pack --rollouts "$out/rollouts.jsonl" --out-dir "$out/batches" --model demo-judge
"$py" batch_processor.py --batch-dir "$out/batches" --base-url "$url/v1" --model demo-judge \
  --check-interval 0.02 --no-progress
"$py" batch_processor.py --batch-dir "$out/batches" --status
"$py" merge_and_map_batch.py map --rollouts "$out/rollouts.jsonl" --results "$out/batches/results" \
  --output "$out/verified_rollouts.jsonl"

echo
echo "== pipeline.py: the same rollout, verification and map from one config, then export_dataset.py and report.py"
# the bundled example's run.toml (rollkit/workflow/example.toml), for this emulator; paths from $out
"$py" -c 'import sys; from rollkit.workflow.config import example_config; print(example_config(*sys.argv[1:]), end="")' \
  "$url/v1" ../input_data_files/VQAv2/questions.jsonl pipeline >"$out/run.toml"
"$py" pipeline.py --config "$out/run.toml" --dry-run | grep -E "^== |dry run|cost|batch verification"
"$py" pipeline.py --config "$out/run.toml"

echo
echo "outputs:"
echo "  $out/final_results.jsonl   one record per question (generated_answers, generated_scores, best_answer)"
echo "  $out/sft.jsonl             kept pairs as conversations, ready for SFT"
echo "  $out/rollouts.jsonl        one record per rollout, every step scored (steps_with_score)"
echo "  $out/verified_rollouts.jsonl  the rollouts with the judge's verdict (conclusion, judge_first_incorrect_step)"
echo "  $out/final_results.jsonl.summary.json, .config.json, .journal.jsonl, .errors.jsonl"
echo "  $out/pipeline/training_data_files/vqav2_example/  prm.train.parquet, prm.val.parquet (TRL stepwise rows), sft.jsonl"
echo "  $out/pipeline/report/index.html  the run at a glance: step scores, MC vs judge, label policies, requests and cost"
