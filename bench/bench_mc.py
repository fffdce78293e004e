"""Monte-Carlo step scores on the emulator's realism profile: exhaustive, binary search and
adaptive on the same rollouts. Prints figures; not a test.

    .venv/bin/python bench/bench_mc.py                  # a minute or two
    .venv/bin/python bench/bench_mc.py --questions 40   # quicker

The emulator runs with `--realism`: questions differ in difficulty (a sound prefix of a hard one
often fails), a wrong step is sometimes recovered from, and solutions have 8 to 12 steps. Its
policy knows each rollout's first wrong step (`first_wrong_step(response)`). rollout.py runs once
per mode over the same questions; the rollouts are the same each time (same bodies, same seed),
only their scoring differs:

1. exhaustive, every step with N continuations in one request with `n` (the baseline);
2. binary-search, the first zero-score step in O(log steps) probes of N;
3. adaptive, the same search with probes in rounds of --mc-round that stop at the first success.
   A round asks `n` seeded base + first; the emulator, like vLLM, samples child i with seed + i, so
   the rounds draw exhaustive's own samples and the two differ only by search (each run pays for
   its own requests: no journal is shared);
4. exhaustive again on the same rollouts with other continuation samples (`--no-seed`, its journal
   given the first run's rollouts): how well exhaustive agrees with itself when the samples differ,
   which is what any mode can expect from a server that does not follow vLLM's seed rule;
5. exhaustive with --no-n, N requests per step (for prompt tokens per step), and adaptive with
   --no-n: its samples are then exhaustive --no-n's own requests, so the two differ only by search.

Printed per mode: continuations and completion tokens paid as a share of exhaustive's (goal for
adaptive: <= 30% of the tokens), how often its first zero-score step agrees with exhaustive's (goal
>= 95%) and with the policy's known first wrong step; then prompt tokens per scored step with and
without `n`, and the prompt tokens a prefix-caching server reported as cached.
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

from rollkit.content.inputs import entry_id, iter_inputs
from rollkit.emulator.datasets import write_questions
from rollkit.emulator.steps_text import first_wrong_step
from rollkit.emulator.testing import run_emulator
from rollkit.stages.montecarlo import RolloutParams, generation_request, rollout_messages
from rollkit.store.journal import RequestJournal, request_key

ROOT = Path(__file__).resolve().parents[1]
MODES = {"exhaustive": (), "binary-search": ("--mc-mode", "binary-search"), "adaptive": ("--mc-mode", "adaptive"),
         "exhaustive, other samples": ("--no-seed",), "exhaustive --no-n": ("--no-n",),
         "adaptive --no-n": ("--no-n", "--mc-mode", "adaptive")}
SAME_ROLLOUTS = ("exhaustive", "binary-search", "adaptive", "exhaustive, other samples")


def run_rollout(url: str, questions: Path, output: Path, args: argparse.Namespace, *extra: str) -> float:
    """One rollout.py run as a user would start it; returns its wall time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "bench"}
    command = [sys.executable, str(ROOT / "rollout.py"), "--input", str(questions), "--output", str(output),
               "--base-url", f"{url}/v1", "--model_name", "policy", "--num-rollouts", str(args.rollouts),
               "--num-mc", str(args.mc), "--mc-round", str(args.round), "--scoring-mode", "vqa_score",
               "--concurrency", "32", *extra]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"rollout.py failed:\n{done.stderr[-2000:]}")
    return time.monotonic() - start


def same_rollouts_journal(questions: Path, work: Path, args: argparse.Namespace) -> None:
    """Give the `--no-seed` run the first run's rollouts: its generation requests (without a seed)
    are journaled with the replies the seeded ones got, so only its continuations are new."""
    paid_for = RequestJournal(work / "exhaustive.jsonl.journal.jsonl").open()
    other = RequestJournal(work / "exhaustive, other samples.jsonl.journal.jsonl").open()
    seeded = RolloutParams("policy", num_rollouts=args.rollouts, num_mc=args.mc)
    unseeded = RolloutParams("policy", num_rollouts=args.rollouts, num_mc=args.mc, seeded=False)
    for item in iter_inputs(questions):
        messages = rollout_messages(item.record, item.source, seeded)
        request = generation_request(messages, entry_id(item.record), 0, seeded)
        reply = paid_for.get(request_key(request.body, request.sample_index))
        replay = generation_request(messages, entry_id(item.record), 0, unseeded)
        other.put(request_key(replay.body, replay.sample_index), reply)
    paid_for.close()
    other.close()


def load(path: Path) -> dict[str, dict]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["rollout_id"]: r for r in records if not r["parsing_failed"]}


def paid(run: dict[str, dict], name: str) -> int:
    return sum(r["mc_usage"][name] for r in run.values())


def prompt_tokens_per_step(run: dict[str, dict]) -> float:
    measured = sum(s["measured"] for r in run.values() for s in r["steps_with_score"])
    return paid(run, "prompt_tokens") / max(1, measured)


def agreement(run: dict[str, dict], reference: dict[str, dict]) -> float:
    same = sum(run[k]["first_incorrect_step"] == reference[k]["first_incorrect_step"] for k in reference)
    return same / len(reference)


def truth_agreement(run: dict[str, dict]) -> float:
    return sum(r["first_incorrect_step"] == first_wrong_step(r["response"]) for r in run.values()) / len(run)


def cached_share(work: Path, name: str) -> float:
    requests = json.loads((work / f"{name}.jsonl.summary.json").read_text())["requests"]
    return requests.get("cached_tokens", 0) / max(1, requests["prompt_tokens"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=120)
    parser.add_argument("--rollouts", type=int, default=2, help="K per question")
    parser.add_argument("--mc", type=int, default=16, help="N continuations per step")
    parser.add_argument("--round", type=int, default=4, help="adaptive: continuations per round")
    parser.add_argument("--seed", default="11", help="the emulator's seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_mc_") as folder, run_emulator("--seed", args.seed,
                                                                                "--realism") as url:
        work = Path(folder)
        questions = write_questions(work / "q.jsonl", args.questions, images=8, shape="question")
        times = {}
        for name, extra in MODES.items():
            if name == "exhaustive, other samples":
                same_rollouts_journal(questions, work, args)
            times[name] = run_rollout(url, questions, work / f"{name}.jsonl", args, *extra)
        runs = {name: load(work / f"{name}.jsonl") for name in MODES}
        cached = cached_share(work, "exhaustive")
    full = runs["exhaustive"]
    assert all(set(run) == set(full) for run in runs.values()), "every run must score the same rollouts"
    # --no-n asks for each rollout on its own (its own seed), so only its prompt tokens are compared
    assert all(runs[name][k]["response"] == full[k]["response"] for name in SAME_ROLLOUTS for k in full)
    steps = [len(r["steps_with_score"]) for r in full.values()]
    print(f"{len(full)} rollouts ({args.questions} questions x {args.rollouts}, {min(steps)}-{max(steps)} steps), "
          f"N = {args.mc}, rounds of {args.round}; {sum(not r['is_correct'] for r in full.values())} rollouts "
          "reached a wrong answer")
    print("wall time: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in times.items()))
    print(f"\n{'mode':<27}{'continuations':>15}{'share':>8}{'completion tokens':>20}{'share':>8}"
          f"{'= exhaustive':>14}{'= truth':>9}")
    for name in SAME_ROLLOUTS:
        run = runs[name]
        count, tokens = paid(run, "continuations"), paid(run, "completion_tokens")
        print(f"{name:<27}{count:>15,}{count / paid(full, 'continuations'):>8.1%}{tokens:>20,}"
              f"{tokens / paid(full, 'completion_tokens'):>8.1%}{agreement(run, full):>14.1%}"
              f"{truth_agreement(run):>9.1%}")
    print("  = exhaustive: same first zero-score step as exhaustive (goal >= 95%); = truth: the policy's first "
          "wrong step.\n  Binary search and adaptive draw exhaustive's samples (vLLM's seed rule); the last row "
          "draws others,\n  the agreement to expect from a server without that rule. "
          "Goal for adaptive: <= 30% of the tokens.")
    separate, adaptive_separate = runs["exhaustive --no-n"], runs["adaptive --no-n"]
    share = paid(adaptive_separate, "completion_tokens") / paid(separate, "completion_tokens")
    print(f"with --no-n (adaptive's samples are exhaustive's own requests): adaptive paid {share:.1%} of the "
          f"tokens and agrees with exhaustive {agreement(adaptive_separate, separate):.1%}")
    early = [s for r in runs["adaptive"].values() for s in r["steps_with_score"] if s["measured"]]
    print(f"adaptive probes: {len(early)}, {sum(s['decided_early'] for s in early)} decided early, "
          f"{sum(s['num_mc_total'] for s in early) / max(1, len(early)):.1f} continuations a probe")
    with_n, without_n = prompt_tokens_per_step(full), prompt_tokens_per_step(runs["exhaustive --no-n"])
    print("\nprompt tokens per scored step (exhaustive)")
    print(f"  N requests (--no-n, baseline)  {without_n:>9,.0f}")
    print(f"  one request with n             {with_n:>9,.0f}  = {with_n / without_n:.1%} of --no-n "
          f"({without_n / with_n:.1f}x fewer)")
    print(f"  reported cached by the server  {cached:>9.1%} of exhaustive's prompt tokens")


if __name__ == "__main__":
    main()
