"""rollout.py end to end against the emulator: record shape, both Monte-Carlo modes, crash and
resume, refusals, dry run, and run_rollout.sh."""

from __future__ import annotations

import json
import subprocess
import time

from rollkit.content.inputs import entry_id, iter_inputs
from rollkit.content.steps import parse_solution
from rollkit.emulator.datasets import write_questions
from rollkit.emulator.steps_text import first_wrong_step
from rollkit.emulator.testing import get_stats, run_emulator
from tests.support import FIXTURES, ROOT, crash_and_resume, read_jsonl, run_script, script_env

EXAMPLE = ROOT / "input_data_files" / "VQAv2" / "questions.jsonl"
FIXTURE_ROLLOUTS = read_jsonl(FIXTURES / "rollouts_gpt-4.1.jsonl")
OUR_FIELDS = {"rollout_id", "entry_id", "response", "steps_with_score", "first_incorrect_step", "parsing_failed",
              "parsing_failed_reason", "model", "usage", "mc_usage", "is_correct"}


def rollout_args(url: str, questions, output, *extra: str) -> list[str]:
    return ["--input", str(questions), "--output", str(output), "--base-url", f"{url}/v1", "--model_name", "policy",
            "--num-rollouts", "2", "--num-mc", "4", "--answer-format", "correct_answer",
            "--scoring-mode", "vqav2_num_str_only_score", "--concurrency", "8", "--request-timeout", "5", *extra]


def by_rollout(path) -> dict[str, dict]:
    records = read_jsonl(path)
    ids = [r["rollout_id"] for r in records]
    assert len(ids) == len(set(ids)), "duplicate rollout ids"
    return dict(zip(ids, records, strict=True))


def expected_ids(questions, k: int = 2) -> set[str]:
    return {f"{entry_id(item.record)}:r{i}" for item in iter_inputs(questions) for i in range(k)}


def check_shape(record: dict) -> None:
    fixture = FIXTURE_ROLLOUTS[0]
    assert OUR_FIELDS <= set(record) and {"uid", "question", "answer", "image"} <= set(record)
    assert set(fixture["steps_with_score"][0]) <= set(record["steps_with_score"][0])
    assert record["rollout_id"].startswith(record["entry_id"] + ":r") and not record["parsing_failed"]
    assert [s["step"] for s in record["steps_with_score"]] == parse_solution(record["response"]).steps
    assert record["model"] == "emulator/policy" and record["usage"]["prompt_tokens"] > 0


def test_exhaustive_and_binary_search_on_the_example(tmp_path):
    exhaustive, binary = tmp_path / "exhaustive.jsonl", tmp_path / "binary.jsonl"
    with run_emulator("--seed", "7", "--answer-key", str(EXAMPLE)) as url:
        first = run_script("rollout.py", *rollout_args(url, EXAMPLE, exhaustive))
        second = run_script("rollout.py", *rollout_args(url, EXAMPLE, binary, "--mc-mode", "binary-search"))
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    full, searched = by_rollout(exhaustive), by_rollout(binary)
    assert set(full) == set(searched) == expected_ids(EXAMPLE)
    right = sum(r["is_correct"] for r in full.values())
    assert f"accuracy  {right} of {len(full)} reached the reference answer" in first.stderr
    counted = json.loads((tmp_path / "exhaustive.jsonl.summary.json").read_text())["records"]
    assert (counted["right"], counted["checked"]) == (right, len(full))
    agree = 0
    for rid, record in full.items():
        check_shape(record)
        check_shape(searched[rid])
        truth = first_wrong_step(record["response"])
        assert record["is_correct"] == (truth is None) == searched[rid]["is_correct"]
        for i, step in enumerate(record["steps_with_score"]):
            assert step["measured"] and step["num_mc_total"] == 4
            assert step["score"] == step["num_mc_correct"] / 4
            assert truth is None or i < truth or step["score"] == 0  # nothing recovers after a wrong step
        assert searched[rid]["response"] == record["response"]
        agree += searched[rid]["first_incorrect_step"] == record["first_incorrect_step"] == truth
    assert agree >= 0.9 * len(full)
    continuations = [sum(r["mc_usage"]["continuations"] for r in run.values()) for run in (full, searched)]
    assert continuations[1] < 0.5 * continuations[0]
    assert any(not s["measured"] for r in searched.values() for s in r["steps_with_score"])


def test_local_server_style_without_n(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 4, images=1, shape="question")
    out = tmp_path / "out.jsonl"
    with run_emulator("--seed", "2") as url:
        port = url.rsplit(":", 1)[1]
        args = rollout_args(url, questions, out, "--no-n", "--scoring-mode", "vqa_score")
        args[args.index("--base-url"):args.index("--base-url") + 2] = ["--port", port]
        done = run_script("rollout.py", *args)
        requests = get_stats(url)["requests"]
    assert done.returncode == 0, done.stderr
    records = by_rollout(out)
    assert set(records) == expected_ids(questions)
    for record in records.values():
        check_shape(record)
        assert record["mc_usage"]["requests"] == record["mc_usage"]["continuations"]
    assert requests == 8 + sum(r["mc_usage"]["requests"] for r in records.values())


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 16, images=2, shape="question")
    clean, crashed = tmp_path / "clean.jsonl", tmp_path / "crashed.jsonl"
    with run_emulator("--seed", "9", "--latency-ms", "30") as url:
        run = crash_and_resume(url, "rollout.py", rollout_args(url, questions, clean),
                               rollout_args(url, questions, crashed), f"{crashed}.journal.jsonl",
                               kills=3, seed=5, replies=(10, 60))
    assert run.written_before_finish < 32, "the kills came too late to test anything"
    assert run.finished.returncode == 0, run.finished.stderr
    assert by_rollout(crashed) == by_rollout(clean)
    assert len(by_rollout(clean)) == 32
    # Only requests in flight at a kill can be served twice: at most `--concurrency` per kill.
    assert run.stats["duplicates"] <= 3 * 8
    keys = [e["key"] for e in read_jsonl(f"{crashed}.journal.jsonl")]
    assert len(keys) == len(set(keys)), "a journaled reply was paid for again"


def test_content_filter_refusals_go_to_the_errors_file(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 3, shape="question")
    out = tmp_path / "out.jsonl"
    with run_emulator("--fault-content-filter", "1") as url:
        done = run_script("rollout.py", *rollout_args(url, questions, out))
        again = run_script("rollout.py", *rollout_args(url, questions, out))
    # every record refused: nothing useful written, so not a quiet 0, now or when run again
    assert done.returncode == again.returncode == 1, done.stderr
    assert "no record done: 6 failed (content_filter 6)" in done.stderr
    assert "no record done: 0 failed" in again.stderr and "3 failed before" in again.stderr  # 3 questions
    assert read_jsonl(out) == []  # not written as "failed to parse", as the seed did
    errors = read_jsonl(f"{out}.errors.jsonl")
    assert {e["error_key"] for e in errors} == {e["rollout_id"] for e in errors} == expected_ids(questions)
    assert all(e["reason"] == "content_filter" and e["entry_id"] in e["rollout_id"] for e in errors)
    assert "content_filter 6" in done.stderr


def test_dry_run_calls_nothing(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 5, images=1, shape="question")
    with run_emulator() as url:
        done = run_script("rollout.py", *rollout_args(url, questions, tmp_path / "out.jsonl"), "--dry-run")
        assert get_stats(url)["requests"] == 0
    assert done.returncode == 0, done.stderr
    # per question: one generation request (n=2), then 2 rollouts x at most 20 steps, one request each
    assert "5 records" in done.stdout and "205 requests" in done.stdout
    assert not (tmp_path / "out.jsonl").exists()


def run_sh(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "run_rollout.sh"), *args], capture_output=True, text=True, env=env,
                          timeout=60, cwd=ROOT)


def test_run_rollout_sh_detaches_logs_and_checks_keys(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 2, shape="question")
    out = tmp_path / "out.jsonl"
    env = script_env(ROLLOUT_LOG_DIR=str(tmp_path / "logs"), ROLLOUT_DETACH="nohup", ROLLOUT_NAME="t")
    no_key = {k: v for k, v in env.items() if k != "OPENAI_API_KEY"}
    refused = run_sh("start", "--input", str(questions), "--output", str(out), "--base-url",
                     "https://api.example.com/v1", "--model_name", "m", env=no_key)
    assert refused.returncode == 1 and "OPENAI_API_KEY is not set" in refused.stderr
    azure = run_sh("start", "--azure-endpoint", "https://x.openai.azure.com", "--deployment", "d", env=no_key)
    assert azure.returncode == 1 and "AZURE_API_KEY is not set" in azure.stderr
    with run_emulator() as url:
        started = run_sh("start", *rollout_args(url, questions, out), env=no_key)  # loopback: no key needed
        assert started.returncode == 0, started.stderr
        assert "log:" in started.stdout
        deadline = time.monotonic() + 30
        while "not running" not in run_sh("status", env=env).stdout and time.monotonic() < deadline:
            time.sleep(0.2)
    logs = run_sh("logs", env=env)
    assert "rollout summary" in logs.stdout and "exited with status 0" in logs.stdout
    assert len(read_jsonl(out)) == 4
    assert len(list((tmp_path / "logs").glob("t_*.log"))) == 1
    bad = run_sh("start", "--input", str(questions), env=no_key)  # a usage error is reported at once
    assert bad.returncode == 1 and "required" in bad.stderr


def test_fixture_rollouts_can_be_scored_again(tmp_path):
    """The seed's own output is a valid input: its records keep their fields and get fresh rollouts."""
    rows = [{**r, "image": str(FIXTURES / r["image"])} for r in FIXTURE_ROLLOUTS[:2]]
    questions = tmp_path / "seed.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    with run_emulator("--seed", "1") as url:
        done = run_script("rollout.py", *rollout_args(url, questions, out, "--num-rollouts", "1",
                                                      "--mc-mode", "binary-search"))
    assert done.returncode == 0, done.stderr
    for record in read_jsonl(out):
        check_shape(record)
        assert record["uid"] in {r["uid"] for r in rows}
