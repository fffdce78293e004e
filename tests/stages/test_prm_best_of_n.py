"""Best-of-N with a PRM (`reject`/`score --scorer-kind prm`) and `prm-score --dry-run`, against the
emulator's PRM over real HTTP: its wrong steps are the planted ones, so the kept candidate is known
by construction (a good step has P(good) >= 0.60, a planted wrong one <= 0.30: under `min`, any
all-good candidate beats every candidate with a wrong step)."""

from __future__ import annotations

import random
import re

import pytest

from rollkit.content.prm_turns import StepTokens
from rollkit.emulator import prm as emulated
from rollkit.emulator.datasets import write_questions
from rollkit.emulator.steps_text import is_bad_step
from rollkit.emulator.testing import get_stats, reset_stats, run_emulator
from rollkit.stages.prm_conversation import conversation, split_steps
from tests.support import crash_and_resume, read_jsonl, run_script
from tests.support.prm import render, solution, write_jsonl

SEED = 3
PRM = "tiny-prm"


@pytest.fixture(scope="module")
def url():
    with run_emulator("--seed", str(SEED), "--no-auth", "--latency-ms", "20") as base:
        yield base


def expected(record: dict, answer: str) -> list[float]:
    """The emulator's P(good) per step of a candidate: keyed by the user turn holding the step."""
    messages = conversation(record, split_steps(answer, None), "sys", StepTokens(), [])
    return [emulated.p_good(m["content"], SEED) for m in messages if m["role"] == "user"]


def reject_args(url: str, questions, out, *extra: str) -> list[str]:
    return ["--input_file", str(questions), "--output_file", str(out), "--generator_model", "gen",
            "--scorer_model", PRM, "--scorer-kind", "prm", "--base-url", f"{url}/v1", "--answers_per_question", "4",
            "--concurrency", "4", "--request-timeout", "10", *extra]


def test_reject_keeps_the_candidate_the_prm_rates_best(url, tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 10, images=2)
    out, sft = tmp_path / "out.jsonl", tmp_path / "sft.jsonl"
    done = run_script("reject.py", *reject_args(url, questions, out, "--min-score", "0.5", "--sft-output", str(sft)))
    assert done.returncode == 0, done.stderr
    records = read_jsonl(out)
    assert len(records) == 10
    mixed = 0
    for record in records:
        answers = record["generated_answers"]
        truth = [expected(record, answer) for answer in answers]
        assert len(answers) == 4 and record["prm_mode"] == "one-request" and record["prm_aggregate"] == "min"
        for got, want in zip(record["prm_step_scores"], truth, strict=True):
            assert got == pytest.approx(want, abs=1e-9)
        assert record["generated_scores"] == record["prm_score"] == pytest.approx([min(t) for t in truth])
        assert record["prm_failures"] == [None] * 4 and record["failed_scores"] == 0
        best = max(range(4), key=lambda i: (min(truth[i]), -i))  # ties: the earliest, as the judge's
        assert record["best_index"] == best and record["best_answer"] == answers[best]
        clean = [not any(is_bad_step(s) for s in split_steps(a, None)) for a in answers]
        if any(clean) and not all(clean):
            mixed += 1
            assert clean[best]  # an all-good candidate won over every one with a planted wrong step
        assert record["selected"] == (record["best_score"] >= 0.5)
    assert mixed >= 3, "too few questions with right and wrong candidates to show anything"
    assert len(read_jsonl(sft)) == sum(r["selected"] for r in records) > 0


def test_reject_with_a_prm_resumes_after_kills_without_paying_twice(url, tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 24)
    clean, crashed = tmp_path / "clean.jsonl", tmp_path / "crashed.jsonl"
    reset_stats(url)
    run = crash_and_resume(url, "reject.py", reject_args(url, questions, clean, "--text-only"),
                           reject_args(url, questions, crashed, "--text-only"), f"{crashed}.journal.jsonl",
                           kills=2, seed=7, replies=(10, 40))
    assert run.written_before_finish < 24, "the kills came too late to test anything"
    assert run.finished.returncode == 0, run.finished.stderr
    by_id = lambda path: {r["entry_id"]: r for r in read_jsonl(path)}  # noqa: E731
    assert by_id(crashed) == by_id(clean) and len(by_id(clean)) == 24
    assert all(r["prm_step_scores"] for r in by_id(crashed).values())
    journal = [e["key"] for e in read_jsonl(f"{crashed}.journal.jsonl")]
    assert len(journal) == len(set(journal)), "a journaled reply was paid for again"
    # only requests in flight at a kill are served twice: at most --concurrency per kill
    assert run.stats["duplicates"] <= 2 * 4
    assert run.stats["completed"] <= run.clean_stats["completed"] + 2 * 4


def sampled_file(tmp_path):
    """Candidates with planted first errors: the all-good one (index 1) is the best by construction
    (under min or last); a free-text candidate has no steps."""
    rng = random.Random(9)
    records = []
    for i in range(4):
        firsts = [1, None, 2]
        answers = [render(solution(rng, first, "4"), "4") for first in firsts]
        if i == 1:
            answers.append("I think it is 4, there is no need for steps.")
        records.append({"question": f"How many buses are there? ({i})", "answer": "4", "entry_id": f"q{i}",
                        "generated_answers": answers})
    records.append({"question": "No steps at all", "answer": "4", "entry_id": "q4",
                    "generated_answers": ["just text", "more text"]})
    return write_jsonl(tmp_path / "sampled.jsonl", records), records


def test_score_with_a_prm_picks_the_all_good_candidate_and_names_the_one_without_steps(url, tmp_path):
    path, records = sampled_file(tmp_path)
    out = tmp_path / "scored.jsonl"
    done = run_script("score.py", "--input_file", str(path), "--output_file", str(out), "--model_name", PRM,
                      "--scorer-kind", "prm", "--base-url", f"{url}/v1", "--text-only", "--prm-mode", "per-step",
                      "--aggregate", "last", "--min-score", "0.5")
    assert done.returncode == 0, done.stderr
    assert f"{path}:2: candidate 3 has no steps" in done.stderr and "--step-split" in done.stderr
    rows = {r["entry_id"]: r for r in read_jsonl(out)}
    assert len(rows) == 5  # the bad candidates did not stop the others
    for record in records[:4]:
        row = rows[record["entry_id"]]
        assert row["prm_mode"] == "per-step" and row["best_index"] == 1 and row["selected"]
        assert all(len(s) == 4 for s in row["prm_step_scores"][:3])
        # last: the concluding step, good (>= 0.60) only in the all-good candidate
        assert row["generated_scores"][:3] == [s[-1] for s in row["prm_step_scores"][:3]]
    odd = rows["q1"]
    assert odd["generated_scores"][3] is None and odd["prm_step_scores"][3] is None
    assert odd["prm_failures"][3]["reason"] == "no_steps" and odd["prm_failures"][3]["message"].startswith(f"{path}:2:")
    assert odd["incomplete"] is False  # asking again cannot give a free-text candidate steps
    none = rows["q4"]
    assert none["generated_scores"] == [None, None] and none["best_answer"] is None and none["selected"] is False


def dry_run_requests(done) -> int:
    return int(re.search(r"(\d+) requests", done.stdout)[1])


def test_dry_runs_count_the_prm_requests_and_send_nothing(url, tmp_path):
    path, records = sampled_file(tmp_path)
    rollouts = write_jsonl(tmp_path / "rollouts.jsonl", [
        {"question": "q", "answer": "4", "rollout_id": f"r{i}", "response": r["generated_answers"][0]}
        for i, r in enumerate(records[:4])] + [{"question": "q", "answer": "4", "response": "no steps"}])
    questions = write_questions(tmp_path / "q.jsonl", 5, images=1)
    reset_stats(url)
    prm_score = lambda mode: run_script("rollkit/cli/prm_score.py", "--input", str(rollouts),  # noqa: E731
                                        "--output", str(tmp_path / "p.jsonl"), "--model", PRM,
                                        "--base-url", f"{url}/v1", "--prm-mode", mode, "--dry-run")
    one, per = prm_score("one-request"), prm_score("per-step")
    score = run_script("score.py", "--input_file", str(path), "--output_file", str(tmp_path / "s.jsonl"),
                       "--model_name", PRM, "--scorer-kind", "prm", "--base-url", f"{url}/v1", "--prm-mode",
                       "per-step", "--dry-run")
    reject = run_script("reject.py", *reject_args(url, questions, tmp_path / "r.jsonl", "--dry-run"))
    reject_per = run_script("reject.py", *reject_args(url, questions, tmp_path / "r.jsonl", "--dry-run",
                                                      "--prm-mode", "per-step"))
    assert get_stats(url)["requests"] == 0
    for done in (one, per, score, reject, reject_per):
        assert done.returncode == 0, done.stderr
    assert "4 records (1 bad)" in one.stdout and f"{rollouts}:5: the solution has no steps" in one.stderr
    assert dry_run_requests(one) == 4 and dry_run_requests(per) == 4 * 4  # one per solution; one per step
    assert dry_run_requests(score) == 4 * 3 * 4  # 4 steps of 3 candidates; those without steps are not asked
    # one sampling request with n, then the PRM: one request per candidate, or one per step of 8
    assert dry_run_requests(reject) == 5 * (1 + 4) and dry_run_requests(reject_per) == 5 * (1 + 4 * 8)
    assert not any((tmp_path / name).exists() for name in ("p.jsonl", "s.jsonl", "r.jsonl"))


def test_a_prm_server_without_logprobs_stops_score_naming_the_record(tmp_path):
    path, _ = sampled_file(tmp_path)
    with run_emulator("--seed", str(SEED), "--no-auth", "--prm-no-logprobs") as base:
        done = run_script("score.py", "--input_file", str(path), "--output_file", str(tmp_path / "s.jsonl"),
                          "--model_name", PRM, "--scorer-kind", "prm", "--base-url", f"{base}/v1",
                          "--prm-mode", "per-step", "--concurrency", "1")
    assert done.returncode == 2, done.stderr
    assert f"{path}:1: {PRM}: the server returned no top_logprobs" in done.stderr


def test_prm_options_with_the_judge_are_refused_not_ignored(tmp_path):
    path, _ = sampled_file(tmp_path)
    judged = run_script("score.py", "--input_file", str(path), "--output_file", str(tmp_path / "s.jsonl"),
                        "--model_name", "judge", "--port", "1", "--aggregate", "mean", "--text-only")
    assert judged.returncode == 2
    assert "--aggregate, --text-only: PRM options, used only with --scorer-kind prm" in judged.stderr
    assert not (tmp_path / "s.jsonl").exists()


def test_the_judges_reply_budget_with_a_prm_is_refused_not_ignored(tmp_path):
    path, _ = sampled_file(tmp_path)
    for script in ("score.py", "reject.py"):
        io = (["--input_file", str(path), "--output_file", str(tmp_path / "s.jsonl")] if script == "score.py" else
              ["--input_file", str(path), "--output_file", str(tmp_path / "s.jsonl"), "--generator_model", "g",
               "--scorer_model", PRM])
        model = ["--model_name", PRM] if script == "score.py" else []
        done = run_script(script, *io, *model, "--port", "1", "--scorer-kind", "prm", "--scorer-max-tokens", "64")
        assert done.returncode == 2, (script, done.stderr)
        assert "--scorer-max-tokens: the judge's reply budget; a PRM is asked for one token" in done.stderr
        assert not (tmp_path / "s.jsonl").exists()
