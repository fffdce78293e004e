"""The scripts as a user runs them (subprocesses, the seed's flags), against the real vLLM.

A 135M model answers loosely: it rarely follows a step format and its judge replies hold no score.
What is checked is that rollkit records all of that cleanly and exits as the project's rules say.
The tier also pins what rollkit does about what real servers do: a typo that refuses every request stops
the run, and answers cut off at the token budget are kept.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.real.batch_job import BATCH_CONTEXT
from tests.real.server import SERVED_NAME
from tests.support import read_jsonl, run_script

pytestmark = pytest.mark.timeout(300)

QUESTIONS = [("What is 2 + 3?", "5"), ("What is 10 - 4?", "6"), ("What is 3 times 3?", "9")]


def seed_input(path: Path, questions=QUESTIONS) -> Path:
    """The seed's input: a JSON list of conversations."""
    rows = [{"conversations": [{"from": "human", "value": f"{q} Answer with a number."}, {"from": "gpt", "value": a}]}
            for q, a in questions]
    path.write_text(json.dumps(rows))
    return path


def check_exit(run, code: int = 0) -> None:
    assert run.returncode == code, f"exit {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"


def test_seed_sampling_score_and_reject_commands(vllm, tmp_path):
    port = str(vllm.port)
    questions = seed_input(tmp_path / "input.json")
    sampled, scored = tmp_path / "sampled.jsonl", tmp_path / "scored.jsonl"
    check_exit(run_script("sampling.py", "--input_file", str(questions), "--output_file", str(sampled),
                          "--model_name", SERVED_NAME, "--port", port, "--concurrent_requests", "8",
                          "--answers_per_question", "2", "--max-tokens", "192", timeout=240))
    records = read_jsonl(sampled)
    assert len(records) == len(QUESTIONS)
    for record in records:
        # every candidate asked for is either an answer or a recorded failure
        assert len(record["candidates"]) == 2
        assert all(c["ok"] or c.get("reason") or c.get("finish_reason") for c in record["candidates"])
    check_exit(run_script("score.py", "--input_file", str(sampled), "--output_file", str(scored),
                          "--model_name", SERVED_NAME, "--api_port", port, "--concurrency", "8",
                          "--scorer-max-tokens", "64", timeout=240))
    scored_records = read_jsonl(scored)
    assert len(scored_records) == len(QUESTIONS)
    for record in scored_records:
        scores = record["generated_scores"]
        assert len(scores) == len(record["generated_answers"])
        assert all(s is None or isinstance(s, (int, float)) for s in scores)
    final = tmp_path / "final.jsonl"
    check_exit(run_script("reject.py", "--input_file", str(questions), "--output_file", str(final),
                          "--cache_file", str(tmp_path / "cache.jsonl"), "--generator_model", SERVED_NAME,
                          "--scorer_model", SERVED_NAME, "--generator_port", port, "--scorer_port", port,
                          "--concurrency", "8", "--answers_per_question", "2", "--max-tokens", "192",
                          "--scorer-max-tokens", "64", timeout=240))
    assert len(read_jsonl(final)) == len(QUESTIONS)


def test_rollouts_the_model_cannot_format_are_recorded_as_parse_failures(vllm, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in QUESTIONS))
    output = tmp_path / "rollouts.jsonl"
    run = run_script("rollout.py", "--input", str(questions), "--output", str(output), "--port", str(vllm.port),
                     "--model_name", SERVED_NAME, "--num-rollouts", "2", "--num-mc", "4",
                     "--answer-format", "correct_answer", "--scoring-mode", "vqav2_num_str_only_score",
                     "--max-tokens", "192", "--concurrency", "8", timeout=240)
    check_exit(run)  # a reply that cannot be parsed is a result, not an error of the run
    rollouts = read_jsonl(output)
    assert len(rollouts) == 2 * len(QUESTIONS)
    for rollout in rollouts:
        assert rollout["response"]  # the text is kept whatever its shape
        if rollout["parsing_failed"]:
            assert rollout["parsing_failed_reason"] and rollout["steps_with_score"] == []
            assert rollout["is_correct"] is False
        if rollout["finish_reason"] == "length":  # cut off at --max-tokens: recorded as such, unscored
            assert not rollout["parsing_failed"] and rollout["steps_with_score"] == []


def test_a_model_name_typo_stops_quickly_and_writes_nothing_off(vllm, tmp_path):
    many = [(f"What is {i} + {i + 1}?", str(2 * i + 1)) for i in range(24)]  # 24 records, each its own entry
    questions = seed_input(tmp_path / "input.json", many)
    output = tmp_path / "sampled.jsonl"
    args = ["--input_file", str(questions), "--output_file", str(output), "--port", str(vllm.port),
            "--concurrent_requests", "4", "--answers_per_question", "1", "--max-tokens", "16"]
    started = time.monotonic()
    run = run_script("sampling.py", *args, "--model_name", "smollm2-typo", timeout=120)
    assert run.returncode == 2, run.stdout[-2000:]
    assert time.monotonic() - started < 60
    assert "does not exist" in run.stderr + run.stdout  # the server's own message
    assert read_jsonl(output) == []
    fixed = run_script("sampling.py", *args, "--model_name", SERVED_NAME, timeout=180)
    check_exit(fixed)
    assert len(read_jsonl(output)) == len(many)


def test_answers_cut_off_at_max_tokens_are_kept(vllm, tmp_path):
    questions = seed_input(tmp_path / "input.json", [("Write a long story about a dragon and a knight.", "-")])
    output = tmp_path / "sampled.jsonl"
    check_exit(run_script("sampling.py", "--input_file", str(questions), "--output_file", str(output),
                          "--model_name", SERVED_NAME, "--port", str(vllm.port), "--answers_per_question", "4",
                          "--max-tokens", "16", timeout=120))
    [record] = read_jsonl(output)
    assert len(record["generated_answers"]) == 4 and all(record["generated_answers"])
    assert [c["finish_reason"] for c in record["candidates"]] == ["length"] * 4


def test_pack_for_vllm_then_vllm_run_batch_then_map(packed_batch):
    """pack --max-model-len fits every line to the context; without it a line's reply budget over
    the context is answered 400 by `vllm run-batch`, which still exits 0, and map reports it failed.
    (The packing and the batch run start early: see tests/real/batch_job.py.)"""
    folder = packed_batch.folder
    lines = read_jsonl(folder / "capped" / "batch_0001.jsonl")
    assert len(lines) == 4 and all(line["body"]["max_completion_tokens"] < BATCH_CONTEXT for line in lines)
    assert json.loads((folder / "capped" / "manifest.json").read_text())["max_model_len"] == BATCH_CONTEXT
    assert {line["body"]["max_completion_tokens"] for line in read_jsonl(folder / "uncapped" / "batch_0001.jsonl")} \
        == {8192}
    code, log = packed_batch.run.wait()
    assert code == 0, log  # vLLM exits 0 whatever its lines got
    status = {r["custom_id"]: r["response"]["status_code"] for r in read_jsonl(packed_batch.results)}
    assert sorted(status.values()) == [200] * 4 + [400] * 2
    for name in ("capped", "uncapped"):
        check_exit(run_script("merge_and_map_batch.py", "map", "--rollouts", str(folder / f"{name}.jsonl"),
                              "--results", str(packed_batch.results), "--output", str(folder / f"{name}.verified.jsonl")))
    verified = read_jsonl(folder / "capped.verified.jsonl")
    # the small judge writes no <conclusion>: each reply is kept and said to have none
    assert all(r["verification_status"] in ("ok", "no_conclusion") and r["verification_response"]
               for r in verified)
    refused = read_jsonl(folder / "uncapped.verified.jsonl")
    assert [r["verification_status"] for r in refused] == ["failed", "failed"]


def test_a_prompt_over_the_context_fails_its_own_record_only(vllm, tmp_path):
    long_question = "word " * 5000 + "How many words?"
    questions = seed_input(tmp_path / "input.json", [*QUESTIONS[:2], (long_question, "5000")])
    output = tmp_path / "sampled.jsonl"
    run = run_script("sampling.py", "--input_file", str(questions), "--output_file", str(output),
                     "--model_name", SERVED_NAME, "--port", str(vllm.port), "--concurrent_requests", "1",
                     "--answers_per_question", "1", "--max-tokens", "48", timeout=120)
    check_exit(run)  # a permanent error of one record is a result of the run
    summary = json.loads(Path(f"{output}.summary.json").read_text())
    assert summary["records"]["seen"] == 3  # the run went on past the refused record
    refused = [e for e in read_jsonl(f"{output}.errors.jsonl") if "maximum context length" in json.dumps(e)]
    assert len(refused) == 1 and "400" in json.dumps(refused[0])
