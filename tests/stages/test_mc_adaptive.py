"""Adaptive Monte-Carlo scoring and the emulator's realism profile it is measured against."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re

from rollkit.content.steps import parse_solution, text_prefix
from rollkit.emulator.datasets import write_questions
from rollkit.emulator.policy import Policy, PolicySettings, first_wrong_step, read_prompt
from rollkit.emulator.steps_text import is_bad_step, parse_steps
from rollkit.emulator.testing import get_stats, reset_stats, run_emulator
from rollkit.net.samples import sample_seed
from rollkit.stages.mc_search import (
    StepCount,
    cost_aware_split,
    fill_scores,
    max_probes,
    midpoint,
    round_sizes,
    score_binary_search,
)
from rollkit.store.journal import request_key
from tests.support import crash_and_resume, read_jsonl, run_script


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
    responses = [{r["rollout_id"]: r["response"] for r in records} for records in (cut_records, whole_records)]
    assert responses[0] == responses[1]
    # Every continuation repeats its rollout's prompt and image: a caching server bills them once.
    summary = json.loads((tmp_path / "full.jsonl.summary.json").read_text())
    requests = summary["requests"]
    assert 0.3 * requests["prompt_tokens"] < requests["cached_tokens"] < requests["prompt_tokens"]
    shown = re.search(r"tokens +([\d,]+) prompt \(([\d,]+) cached\)", whole.stderr)
    assert shown and int(shown.group(2).replace(",", "")) == requests["cached_tokens"]


def adaptive_run(tmp_path, emulator_args: list[str], *extra: str, questions: int = 6) -> tuple[list[dict], dict]:
    path = write_questions(tmp_path / "q.jsonl", questions, images=1, shape="question")
    out = tmp_path / "adaptive.jsonl"
    with run_emulator(*emulator_args) as url:
        done = run_script("rollout.py", *rollout_args(url, path, out, "--mc-mode", "adaptive", *extra))
        stats = get_stats(url, with_keys=False)
    assert done.returncode == 0, done.stderr
    records = read_jsonl(out)
    assert len(records) == 2 * questions and not any(r["parsing_failed"] for r in records)
    return records, stats


def test_each_round_stops_at_its_first_success_and_a_zero_probe_pays_full_n(tmp_path):
    # Rounds of one continuation: a probe that found the answer found it exactly once, in its last round.
    records, stats = adaptive_run(tmp_path, ["--seed", "3", "--p-continue-correct", "0.3", "--p-correct", "0.3"],
                                  "--mc-round", "1")
    probes = [s for r in records for s in r["steps_with_score"] if s["measured"]]
    good = [s for s in probes if s["num_mc_correct"]]
    zero = [s for s in probes if not s["num_mc_correct"]]
    assert good and zero and any(s["num_mc_total"] > 1 for s in good)
    assert all(s["num_mc_correct"] == 1 and 1 <= s["num_mc_total"] <= 8 and s["score"] == 1.0 for s in good)
    assert all(s["decided_early"] == (s["num_mc_total"] < 8) for s in good)
    assert all(s["num_mc_total"] == 8 and s["score"] == 0.0 and not s["decided_early"] for s in zero)
    # One request per round, and nothing else was sent (the rollouts are one request per question).
    rounds = sum(r["mc_usage"]["requests"] for r in records)
    assert rounds == sum(s["num_mc_total"] for s in probes) == sum(r["mc_usage"]["continuations"] for r in records)
    assert stats["requests"] <= 6 + rounds
    assert all(r["score_kind"] == "label" and r["mc_mode"] == "adaptive" for r in records)


def test_a_good_step_costs_one_round_and_a_correct_rollout_no_probe(tmp_path):
    # Sound prefixes always succeed: a good step is decided by its first round of 2; a wrong one pays 4 rounds.
    records, _ = adaptive_run(tmp_path, ["--seed", "5", "--p-continue-correct", "1"], "--mc-round", "2")
    right = [r for r in records if r["is_correct"]]
    wrong = [r for r in records if not r["is_correct"]]
    assert right and wrong
    for record in right:  # its own answer already reached the truth from its full prefix
        assert record["mc_usage"]["requests"] == record["mc_usage"]["continuations"] == 0
        assert all(s["score"] == 1.0 and not s["measured"] for s in record["steps_with_score"])
        assert record["first_incorrect_step"] is None
    for record in wrong:
        truth = first_wrong_step(record["response"])
        assert record["first_incorrect_step"] == truth
        for i, step in enumerate(record["steps_with_score"]):
            if step["measured"]:
                expected = (2, 2, True) if i < truth else (0, 8, False)
                assert (step["num_mc_correct"], step["num_mc_total"], step["decided_early"]) == expected
            assert step["score"] == (1.0 if i < truth else 0.0)
        assert not record["steps_with_score"][-1]["measured"]  # the rollout's own answer failed from there


def test_sigkill_then_resume_replays_adaptive_rounds_without_paying_twice(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 12, images=1, shape="question")
    clean, crashed = tmp_path / "clean.jsonl", tmp_path / "crashed.jsonl"
    adaptive = ("--mc-mode", "adaptive", "--mc-round", "2")
    with run_emulator("--seed", "9", "--realism", "--latency-ms", "30") as url:
        run = crash_and_resume(url, "rollout.py", rollout_args(url, questions, clean, *adaptive),
                               rollout_args(url, questions, crashed, *adaptive), f"{crashed}.journal.jsonl",
                               kills=2, seed=3, replies=(8, 40))
    assert run.finished.returncode == 0, run.finished.stderr
    assert not read_jsonl(f"{clean}.errors.jsonl") and not read_jsonl(f"{crashed}.errors.jsonl")
    assert run.written_before_finish < 24, "the kills came too late to test anything"
    by_id = {r["rollout_id"]: r for r in read_jsonl(crashed)}
    assert by_id == {r["rollout_id"]: r for r in read_jsonl(clean)} and len(by_id) == 24
    keys = [e["key"] for e in read_jsonl(f"{crashed}.journal.jsonl")]
    assert len(keys) == len(set(keys)), "a journaled round was paid for again"
    assert run.stats["duplicates"] <= 2 * 8  # only requests in flight at a kill
    replayed = int(re.search(r"(\d+) replayed from the journal", run.finished.stderr).group(1))
    assert replayed > 0, run.finished.stderr
    assert any(s["decided_early"] for r in by_id.values() for s in r["steps_with_score"])


def test_hard_labels_never_claim_a_share():
    counts = {2: StepCount(1, 4, decided_early=True), 5: StepCount(0, 16)}
    filled = fill_scores(list("abcdefg"), counts, 5, hard=True)
    assert [s["score"] for s in filled] == [1.0] * 5 + [0.0] * 2
    assert filled[2] == {"step": "c", "score": 1.0, "num_mc_correct": 1, "num_mc_total": 4, "measured": True,
                         "decided_early": True}
    soft = fill_scores(list("abcdefg"), {2: StepCount(1, 4), 5: StepCount(0, 16)}, 5)
    assert soft[2]["score"] == 0.25 and not soft[2]["decided_early"]
    assert round_sizes(16, 4) == [4, 4, 4, 4] and round_sizes(10, 4) == [4, 4, 2] and round_sizes(3, 8) == [3]


def test_the_cost_aware_split_finds_every_first_zero_for_less():
    split = cost_aware_split(16, 4)
    for n_steps in (2, 5, 8, 12):
        cost = {"cost-aware": 0, "middle": 0}
        for first_zero in range(n_steps):
            for name, chosen in (("cost-aware", split), ("middle", midpoint)):
                probed: list[int] = []

                async def measure(step: int, probed=probed, first_zero=first_zero) -> StepCount:
                    probed.append(step)
                    return StepCount(0, 16) if step >= first_zero else StepCount(1, 4, decided_early=True)
                found = asyncio.run(score_binary_search(measure, n_steps, False, chosen))[1]
                assert found == first_zero and len(probed) <= max_probes(n_steps, chosen)
                cost[name] += sum(16 if step >= first_zero else 4 for step in probed)
        assert cost["cost-aware"] <= cost["middle"]
    assert cost["cost-aware"] < cost["middle"]


def test_without_n_adaptive_rounds_are_exhaustives_own_requests(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 4, images=1, shape="question")
    journal = tmp_path / "shared.journal.jsonl"
    full, adaptive = tmp_path / "full.jsonl", tmp_path / "adaptive.jsonl"
    with run_emulator("--seed", "6", "--realism") as url:
        first = run_script("rollout.py", *rollout_args(url, questions, full, "--no-n", "--cache_file", str(journal)))
        reset_stats(url)
        second = run_script("rollout.py", *rollout_args(url, questions, adaptive, "--no-n", "--mc-mode", "adaptive",
                                                        "--cache_file", str(journal)))
        assert get_stats(url)["requests"] == 0  # every round was already paid for by exhaustive
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    exhaustive = {r["rollout_id"]: r for r in read_jsonl(full)}
    for record in read_jsonl(adaptive):
        reference = exhaustive[record["rollout_id"]]["steps_with_score"]
        for step, measured in zip(record["steps_with_score"], reference, strict=True):
            if step["measured"]:  # its rounds are the first of exhaustive's samples
                assert step["num_mc_total"] <= measured["num_mc_total"]
                assert (step["num_mc_correct"] > 0) == (measured["num_mc_correct"] > 0)


def test_with_n_adaptive_rounds_draw_exhaustives_samples_from_a_server_with_vllms_seed_rule(tmp_path):
    # Separate journals: every request is paid for. A round asks `n` from seed base + first, so a
    # server that samples child i with seed + i (vLLM; the emulator) gives it exhaustive's samples.
    # 6 questions: enough measured steps whatever the ids the draws are keyed by (entry ids v3 moved them)
    questions = write_questions(tmp_path / "q.jsonl", 6, images=1, shape="question")
    full, adaptive = tmp_path / "full.jsonl", tmp_path / "adaptive.jsonl"
    # seed 7: with max_completion_tokens in the bodies (issue 15) the emulator draws differently, and under
    # seed 6 nearly every rollout came out right, leaving too few measured steps to compare
    with run_emulator("--seed", "7", "--realism") as url:
        first = run_script("rollout.py", *rollout_args(url, questions, full))
        second = run_script("rollout.py", *rollout_args(url, questions, adaptive, "--mc-mode", "adaptive"))
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    exhaustive = {r["rollout_id"]: r for r in read_jsonl(full)}
    compared = 0
    for record in read_jsonl(adaptive):
        reference = exhaustive[record["rollout_id"]]["steps_with_score"]
        for step, measured in zip(record["steps_with_score"], reference, strict=True):
            if step["measured"]:
                compared += 1
                assert (step["num_mc_correct"] > 0) == (measured["num_mc_correct"] > 0)
                if not step["decided_early"]:
                    assert step["num_mc_correct"] == measured["num_mc_correct"]
    assert compared >= 8, compared


def test_llm_judge_scores_continuations_through_a_judge_endpoint_cached_and_journaled(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 3, images=1, shape="question")
    ruled, judged = tmp_path / "ruled.jsonl", tmp_path / "judged.jsonl"
    with run_emulator("--seed", "2", "--realism") as url, run_emulator("--judge-garbage", "0") as judge_url:
        rules = run_script("rollout.py", *rollout_args(url, questions, ruled, "--mc-mode", "adaptive"))
        judge_flags = ("--mc-mode", "adaptive", "--scoring-mode", "llm_judge", "--judge-base-url", f"{judge_url}/v1",
                       "--judge_model", "judge")
        first = run_script("rollout.py", *rollout_args(url, questions, judged, *judge_flags))
        asked = get_stats(judge_url)["requests"]
        reset_stats(judge_url)
        again = run_script("rollout.py", *rollout_args(url, questions, tmp_path / "again.jsonl", *judge_flags,
                                                       "--cache_file", f"{judged}.journal.jsonl"))
        asked_again = get_stats(judge_url)["requests"]
    assert rules.returncode == first.returncode == again.returncode == 0, first.stderr + again.stderr
    by_rule = {r["rollout_id"]: r["steps_with_score"] for r in read_jsonl(ruled)}
    by_judge = {r["rollout_id"]: r["steps_with_score"] for r in read_jsonl(judged)}
    assert by_judge == by_rule  # the emulator's answers are the truth or a wrong number: the judge agrees
    # Only answers no rule accepted go to the judge, once per distinct (answer, reference) pair.
    wrong = {(r["entry_id"], r["predicted_answer"]) for r in read_jsonl(judged) if not r["is_correct"]}
    assert 0 < asked and len(wrong) <= asked
    wrong_continuations = sum(s["num_mc_total"] - s["num_mc_correct"] for steps in by_judge.values() for s in steps)
    assert asked <= 5 * 3 < wrong_continuations  # the emulator's wrong answers: 5 per question at most
    journal = read_jsonl(f"{judged}.journal.jsonl")
    judge_entries = [e for e in journal if e["response"]["model"] == "emulator/judge"]
    assert len(judge_entries) == asked
    assert asked_again == 0  # replayed from the journal


def test_prompt_files_replace_the_templates_and_records_rebuild_the_exact_requests(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 2, shape="question")
    rollout_file, continue_file = tmp_path / "mine.txt", tmp_path / "go_on.txt"
    rollout_file.write_text("Solve this in steps, at most {{max_reasoning_steps}} of reasoning.\n"
                            "<question>\n{{question}}\n</question>\n", encoding="utf-8")
    continue_file.write_text("Keep going from where your reply stops.\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with run_emulator("--seed", "3") as url:
        done = run_script("rollout.py", *rollout_args(url, questions, out, "--prompt-file", f"rollout={rollout_file}",
                                                      "--prompt-file", f"rollout_continue={continue_file}"))
        refused = run_script("rollout.py", *rollout_args(url, questions, tmp_path / "x.jsonl", "--prompt-file",
                                                         f"rollout={continue_file}"))
    assert done.returncode == 0, done.stderr
    assert refused.returncode == 2 and "{{question}}" in refused.stderr
    journal = {e["key"] for e in read_jsonl(f"{out}.journal.jsonl")}
    for record in read_jsonl(out):
        prompt = record["prompt"]
        assert prompt["text"].startswith("Solve this in steps, at most 10 of reasoning.")
        for name, path in (("rollout", rollout_file), ("rollout_continue", continue_file)):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert prompt["templates"][name] == {"source": str(path.resolve()), "sha256": digest}
        # The record holds enough to rebuild, byte for byte, the requests that were paid for.
        user = {"role": "user", "content": [{"type": "text", "text": prompt["text"]}]}
        base = {"model": "policy", "temperature": 1.0, "max_tokens": 2048}
        generation = {**base, "messages": [user], "n": 2, "seed": sample_seed(record["entry_id"], "rollout")}
        assert request_key(generation) in journal
        prefix = text_prefix(parse_solution(record["response"]), 1)
        continued = {**user, "content": [*user["content"], {"type": "text", "text": continue_file.read_text().strip()}]}
        probe = {**base, "messages": [continued, {"role": "assistant", "content": prefix}], "n": 8,
                 "seed": sample_seed(record["entry_id"], "mc")}
        assert request_key(probe) in journal
