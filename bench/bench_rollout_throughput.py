"""Rollout throughput against an emulator endpoint with tight limits. Prints figures; not a test.

    .venv/bin/python bench/bench_rollout_throughput.py            # about a minute
    .venv/bin/python bench/bench_rollout_throughput.py --seconds 15

rollout.py runs on more questions than it can finish, against one emulator endpoint that enforces
RPM and TPM (`--rpm/--tpm/--window-seconds`; the window is shrunk so a "minute" passes in seconds),
and is interrupted after `--seconds`, as a long run would be seen in its middle. Twice:

1. rollkit: the client is given the same limits, so it budgets requests and tokens before sending;
2. baseline: no client-side limits, so it learns about the limits only from 429s (and then waits
   for `retry-after`), as a client without a budget does.

Printed for each: requests and tokens per window as a share of the limits, measured from the
emulator's own counters once the full bucket it starts with has been used up (goal >= 95% of the
binding limit), and the share of requests answered 429 (goal <= 1%); then rollkit against the
baseline.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _path  # noqa: F401

from rollkit.emulator.datasets import write_questions
from rollkit.emulator.testing import get_stats, reset_stats, run_emulator

ROOT = Path(__file__).resolve().parents[1]
WINDOW = 2.0  # seconds per emulated minute
# Per window. A continuation request bills ~750 prompt tokens + max_tokens x n = ~2,700, so the
# token limit binds first (as it does for real rollouts; the seed said as much).
RPM, TPM = 300, 60_000
MAX_TOKENS = 480


def start_rollout(url: str, questions: Path, output: Path, budgeted: bool) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "bench"}
    limits = ["--rpm", str(RPM), "--tpm", str(TPM)] if budgeted else []
    command = [sys.executable, str(ROOT / "rollout.py"), "--input", str(questions), "--output", str(output),
               "--base-url", f"{url}/v1", "--model_name", "policy", "--num-rollouts", "2", "--num-mc", "4",
               "--scoring-mode", "vqa_score", "--max-tokens", str(MAX_TOKENS), "--concurrency", "24",
               "--window-seconds", str(WINDOW), *limits]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def measure(url: str, questions: Path, output: Path, budgeted: bool, seconds: float) -> dict:
    """Run for `seconds`; rates are taken between the end of the second window and the interrupt."""
    reset_stats(url)
    process = start_rollout(url, questions, output, budgeted)
    try:
        time.sleep(2 * WINDOW + 1.0)  # start-up, then the full bucket the server starts with
        first, t0 = get_stats(url, with_keys=False), time.monotonic()
        time.sleep(max(1.0, seconds - 2 * WINDOW - 1.0))
        last, t1 = get_stats(url, with_keys=False), time.monotonic()
    finally:
        process.send_signal(signal.SIGINT)  # a stopped run keeps what it finished
        _, stderr = process.communicate(timeout=60)
    if process.returncode not in (0, 130):
        raise SystemExit(f"rollout.py failed:\n{stderr[-2000:]}")
    windows = (t1 - t0) / WINDOW
    requests = last["completed"] - first["completed"]
    tokens = last["tokens_billed"] - first["tokens_billed"]
    limited = last["by_status"].get("429", 0)
    return {"requests_share": requests / windows / RPM, "tokens_share": tokens / windows / TPM,
            "share_429": limited / max(1, last["requests"]), "requests_per_window": requests / windows,
            "records": sum(1 for _ in open(output)) if output.exists() else 0}


def show(label: str, figures: dict) -> None:
    binding = max(figures["requests_share"], figures["tokens_share"])
    print(f"{label:<28} requests/limit {figures['requests_share']:6.1%}  tokens/limit {figures['tokens_share']:6.1%}"
          f"  binding limit used {binding:6.1%}  429 share {figures['share_429']:6.2%}"
          f"  ({figures['requests_per_window']:.0f} requests/window, {figures['records']} rollouts)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=25.0, help="length of each run")
    args = parser.parse_args()
    print(f"limits: {RPM} requests and {TPM:,} tokens per {WINDOW:g} s window; each run {args.seconds:g} s, "
          "measured after the first two windows")
    with tempfile.TemporaryDirectory(prefix="bench_rollout_") as folder, run_emulator(
            "--rpm", str(RPM), "--tpm", str(TPM), "--window-seconds", str(WINDOW), "--latency-ms", "80",
            "--seed", "3") as url:
        work = Path(folder)
        questions = write_questions(work / "q.jsonl", 3000, images=16, shape="question")
        rollkit = measure(url, questions, work / "budgeted.jsonl", True, args.seconds)
        show("rollkit (client budget)", rollkit)
        baseline = measure(url, questions, work / "baseline.jsonl", False, args.seconds)
        show("baseline (429s only)", baseline)
    binding = max(rollkit["requests_share"], rollkit["tokens_share"])
    print(f"\nrollkit: {binding:.1%} of the binding limit used (goal >= 95%), "
          f"{rollkit['share_429']:.2%} of requests answered 429 (goal <= 1%)")
    print(f"rollkit / baseline: completed requests per window {rollkit['requests_per_window'] / max(1e-9, baseline['requests_per_window']):.2f}x, "
          f"429 share {rollkit['share_429']:.2%} vs {baseline['share_429']:.2%}")


if __name__ == "__main__":
    main()
