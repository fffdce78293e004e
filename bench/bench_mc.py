"""Monte-Carlo step scores on the emulator: binary search against exhaustive, `n` against separate
requests. Prints figures; not a test.

    .venv/bin/python bench/bench_mc.py                  # about a minute
    .venv/bin/python bench/bench_mc.py --questions 60   # quicker

The emulator's policy knows each rollout's first wrong step (`first_wrong_step(response)`): steps
from it on can never lead to the right answer, steps before it usually do. rollout.py runs three
times over the same synthetic questions; the rollouts are the same each time (same bodies, same
seed), only their scoring differs:

1. exhaustive, the N continuations of a step in one request with `n` (the baseline);
2. exhaustive with --no-n, N requests per step;
3. binary-search with `n`.

Printed: how often binary search's first zero-score step agrees with exhaustive's (goal >= 95%)
and with the policy's truth, the continuations binary search made as a share of exhaustive's (goal
<= 40%), and prompt tokens per scored step with and without `n` (the prompt and image are paid once
per request, so `n` divides them by N).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _path  # noqa: F401

from rollkit.emulator.datasets import write_questions
from rollkit.emulator.steps_text import first_wrong_step
from rollkit.emulator.testing import run_emulator

ROOT = Path(__file__).resolve().parents[1]


def run_rollout(url: str, questions: Path, output: Path, args: argparse.Namespace, *extra: str) -> float:
    """One rollout.py run as a user would start it; returns its wall time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "bench"}
    command = [sys.executable, str(ROOT / "rollout.py"), "--input", str(questions), "--output", str(output),
               "--base-url", f"{url}/v1", "--model_name", "policy", "--num-rollouts", str(args.rollouts),
               "--num-mc", str(args.mc), "--scoring-mode", "vqa_score", "--concurrency", "32", *extra]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"rollout.py failed:\n{done.stderr[-2000:]}")
    return time.monotonic() - start


def load(path: Path) -> dict[str, dict]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["rollout_id"]: r for r in records if not r["parsing_failed"]}


def continuations(run: dict[str, dict]) -> int:
    return sum(r["mc_usage"]["continuations"] for r in run.values())


def prompt_tokens_per_step(run: dict[str, dict]) -> float:
    measured = sum(s["measured"] for r in run.values() for s in r["steps_with_score"])
    return sum(r["mc_usage"]["prompt_tokens"] for r in run.values()) / max(1, measured)


def agreement(run: dict[str, dict], reference: dict[str, dict]) -> float:
    same = sum(run[k]["first_incorrect_step"] == reference[k]["first_incorrect_step"] for k in reference)
    return same / len(reference)


def truth_agreement(run: dict[str, dict]) -> float:
    return sum(r["first_incorrect_step"] == first_wrong_step(r["response"]) for r in run.values()) / len(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=150)
    parser.add_argument("--rollouts", type=int, default=2, help="K per question")
    parser.add_argument("--mc", type=int, default=8, help="N continuations per step")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_mc_") as folder, run_emulator("--seed", "11") as url:
        work = Path(folder)
        questions = write_questions(work / "q.jsonl", args.questions, images=8, shape="question")
        times = {name: run_rollout(url, questions, work / f"{name}.jsonl", args, *extra) for name, extra in (
            ("exhaustive", ()), ("exhaustive_no_n", ("--no-n",)), ("binary", ("--mc-mode", "binary-search")))}
        full, separate, binary = (load(work / f"{name}.jsonl") for name in times)
    assert set(full) == set(binary) == set(separate), "the three runs must score the same rollouts"
    assert all(full[k]["response"] == binary[k]["response"] for k in full)
    print(f"{len(full)} rollouts ({args.questions} questions x {args.rollouts}), N = {args.mc} continuations per "
          f"scored step; {sum(not r['is_correct'] for r in full.values())} rollouts reached a wrong answer")
    print(f"wall time: exhaustive {times['exhaustive']:.1f} s, exhaustive --no-n {times['exhaustive_no_n']:.1f} s, "
          f"binary-search {times['binary']:.1f} s")
    print("\nfirst zero-score step")
    print(f"  binary-search agrees with exhaustive      {agreement(binary, full):7.1%}  (goal >= 95%)")
    print(f"  exhaustive agrees with the policy's truth  {truth_agreement(full):7.1%}")
    print(f"  binary-search agrees with the truth        {truth_agreement(binary):7.1%}")
    share = continuations(binary) / continuations(full)
    print("\ncontinuations")
    print(f"  exhaustive (baseline)  {continuations(full):>8,}")
    print(f"  binary-search          {continuations(binary):>8,}  = {share:.1%} of exhaustive (goal <= 40%)")
    with_n, without_n = prompt_tokens_per_step(full), prompt_tokens_per_step(separate)
    print("\nprompt tokens per scored step (exhaustive)")
    print(f"  N requests (--no-n, baseline)  {without_n:>9,.0f}")
    print(f"  one request with n             {with_n:>9,.0f}  = {with_n / without_n:.1%} of --no-n "
          f"({without_n / with_n:.1f}x fewer)")


if __name__ == "__main__":
    main()
