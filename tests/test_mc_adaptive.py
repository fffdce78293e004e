"""Adaptive Monte-Carlo scoring and the emulator's realism profile it is measured against."""

from __future__ import annotations

import json
import re

from conftest import read_jsonl, run_script

from rollkit.emulator.datasets import write_questions
from rollkit.emulator.policy import Policy, PolicySettings, first_wrong_step, read_prompt
from rollkit.emulator.steps_text import is_bad_step, parse_steps
from rollkit.emulator.testing import run_emulator


def rollout_args(url: str, questions, output, *extra: str) -> list[str]:
    return ["--input", str(questions), "--output", str(output), "--base-url", f"{url}/v1", "--model_name", "policy",
            "--num-rollouts", "2", "--num-mc", "8", "--scoring-mode", "vqa_score", "--concurrency", "8",
            "--request-timeout", "10", *extra]


def question_body(number: int, seed: int = 1) -> dict:
    return {"model": "m", "seed": seed, "messages": [{"role": "user", "content": f"<question>How many {number}?</question>"}]}


def continuation_body(number: int, prefix: str) -> dict:
    body = question_body(number)
    return {**body, "messages": [*body["messages"], {"role": "assistant", "content": prefix}]}


def cut_before(solution: str, upto: int) -> str:
    """The solution up to and including combined step `upto` (0-based), as a continuation prefix."""
    steps = parse_steps(solution)
    target = steps.combined[upto]
    end = solution.index(target) + len(target)
    return solution[: solution.index("\n", solution.index("</step_", end)) + 1]


def test_realism_questions_differ_in_difficulty_and_lengths_vary():
    realism = Policy(PolicySettings(seed=3, realism=True))
    chances = [realism.question_chance(read_prompt(question_body(q))) for q in range(300)]
    assert 0.5 < sum(chances) / len(chances) < 0.7
    assert sum(c < 0.2 for c in chances) > 10 and sum(c > 0.8 for c in chances) > 60  # hard ones and easy ones
    solutions = realism.contents(question_body(1), "key", 40)
    lengths = {len(parse_steps(s).combined) for s in solutions}
    assert min(lengths) >= 8 and max(lengths) <= 12 and len(lengths) >= 3
    assert len({len(s) for s in solutions}) > 30
    # Deterministic per seed, and another seed is another draw.
    assert solutions == Policy(PolicySettings(seed=3, realism=True)).contents(question_body(1), "key", 40)
    assert solutions != Policy(PolicySettings(seed=4, realism=True)).contents(question_body(1), "key", 40)


def test_realism_wrong_steps_are_sometimes_recovered_and_sound_prefixes_follow_the_question():
    realism = Policy(PolicySettings(seed=3, realism=True))
    default = Policy(PolicySettings(seed=3))
    recovered = tried = 0
    for q in range(30):
        wrong = next((s for s in realism.contents(question_body(q), "key", 20) if first_wrong_step(s) is not None), None)
        if wrong is None:
            continue
        bad_prefix = cut_before(wrong, first_wrong_step(wrong))
        assert is_bad_step(parse_steps(bad_prefix).combined[-1])
        continuations = realism.contents(continuation_body(q, bad_prefix), "key", 200)
        tried += len(continuations)
        recovered += sum(first_wrong_step(bad_prefix + c) == first_wrong_step(wrong) and c.count("which suggests") == 0
                         for c in continuations)
        # The default profile never recovers.
        assert all("which suggests" in c for c in default.contents(continuation_body(q, bad_prefix), "key", 50))
    assert 0 < recovered < 0.03 * tried


def test_mc_max_tokens_cuts_continuations_only_and_cached_tokens_reach_the_summary(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 3, images=1, shape="question")
    short, full = tmp_path / "short.jsonl", tmp_path / "full.jsonl"
    with run_emulator("--seed", "4", "--realism") as url:
        cut = run_script("rollout.py", *rollout_args(url, questions, short, "--mc-max-tokens", "12"))
        whole = run_script("rollout.py", *rollout_args(url, questions, full))
    assert cut.returncode == whole.returncode == 0, cut.stderr + whole.stderr
    cut_records, whole_records = read_jsonl(short), read_jsonl(full)
    assert len(cut_records) == len(whole_records) == 6 and not any(r["parsing_failed"] for r in cut_records)
    # A continuation cut at 12 tokens never reaches an answer; the rollouts themselves were not cut.
    assert all(s["score"] == 0 for r in cut_records for s in r["steps_with_score"])
    assert all(r["mc_usage"]["completion_tokens"] <= 12 * r["mc_usage"]["continuations"] for r in cut_records)
    assert any(s["score"] > 0 for r in whole_records for s in r["steps_with_score"])
    assert [r["response"] for r in cut_records] == [r["response"] for r in whole_records]
    # Every continuation repeats its rollout's prompt and image: a caching server bills them once.
    summary = json.loads((tmp_path / "full.jsonl.summary.json").read_text())
    requests = summary["requests"]
    assert 0.3 * requests["prompt_tokens"] < requests["cached_tokens"] < requests["prompt_tokens"]
    shown = re.search(r"tokens +([\d,]+) prompt \(([\d,]+) cached\)", whole.stderr)
    assert shown and int(shown.group(2).replace(",", "")) == requests["cached_tokens"]
