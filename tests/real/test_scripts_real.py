"""The scripts as a user runs them (subprocesses, the seed's flags), against the real vLLM.

A 135M model answers loosely: it rarely follows a step format and its judge replies hold no score.
What is checked is that rollkit records all of that cleanly and exits as the project's rules say.
Tests of behaviour other branches are fixing now are marked xfail(strict=False) with what they need.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import read_jsonl, run_script

from tests.real.server import SERVED_NAME, run_batch

pytestmark = pytest.mark.timeout(300)

QUESTIONS = [("What is 2 + 3?", "5"), ("What is 10 - 4?", "6"), ("What is 3 times 3?", "9")]
FIXTURE_ROLLOUTS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "vqav2_seed" / "rollouts_gpt-4.1.jsonl"


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


@pytest.mark.xfail(strict=False, reason="needs the stop on a refusal that refuses everything (issue 15 item 4)")
def test_a_model_name_typo_stops_quickly_and_writes_nothing_off(vllm, tmp_path):
    questions = seed_input(tmp_path / "input.json", QUESTIONS * 8)  # 24 records
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
    assert len(read_jsonl(output)) == len(QUESTIONS) * 8


@pytest.mark.xfail(strict=False, reason="needs answers cut off at the budget kept with their siblings (item 7)")
def test_answers_cut_off_at_max_tokens_are_kept(vllm, tmp_path):
    questions = seed_input(tmp_path / "input.json", [("Write a long story about a dragon and a knight.", "-")])
    output = tmp_path / "sampled.jsonl"
    check_exit(run_script("sampling.py", "--input_file", str(questions), "--output_file", str(output),
                          "--model_name", SERVED_NAME, "--port", str(vllm.port), "--answers_per_question", "4",
                          "--max-tokens", "16", timeout=120))
    [record] = read_jsonl(output)
    assert len(record["generated_answers"]) == 4 and all(record["generated_answers"])
    assert [c["finish_reason"] for c in record["candidates"]] == ["length"] * 4


def text_rollouts(path: Path, rows: list[dict]) -> Path:
    """Fixture rollouts without their images: the served model reads text only."""
    drop = ("image", "images", "image_path")
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in drop}) + "\n" for r in rows))
    return path


def test_pack_for_vllm_then_vllm_run_batch_then_map(vllm, tmp_path):
    """pack --max-model-len fits every line to the context; without it a line's reply budget over
    the context is answered 400 by `vllm run-batch`, which still exits 0, and map reports it failed.
    The batch engine gets a 1536-token context so that a rambling judge stays quick here."""
    context = 1536
    rows = read_jsonl(FIXTURE_ROLLOUTS)
    capped = text_rollouts(tmp_path / "capped.jsonl", rows[:4])
    uncapped = text_rollouts(tmp_path / "uncapped.jsonl",
                             [{**r, "rollout_id": f"uncapped-{i}"} for i, r in enumerate(rows[4:6])])
    common = ["--model", SERVED_NAME, "--target", "vllm"]
    check_exit(run_script("merge_and_map_batch.py", "pack", "--rollouts", str(capped), "--out-dir",
                          str(tmp_path / "capped"), *common, "--max-model-len", str(context)))
    check_exit(run_script("merge_and_map_batch.py", "pack", "--rollouts", str(uncapped), "--out-dir",
                          str(tmp_path / "uncapped"), *common))
    lines = read_jsonl(tmp_path / "capped" / "batch_0001.jsonl")
    assert len(lines) == 4 and all(line["body"]["max_completion_tokens"] < context for line in lines)
    assert json.loads((tmp_path / "capped" / "manifest.json").read_text())["max_model_len"] == context
    both = tmp_path / "both.jsonl"  # one engine start for both folders
    both.write_bytes((tmp_path / "capped" / "batch_0001.jsonl").read_bytes()
                     + (tmp_path / "uncapped" / "batch_0001.jsonl").read_bytes())
    results = tmp_path / "results.jsonl"
    batch = run_batch(both, results, tmp_path / "engine", max_model_len=context)
    assert batch.returncode == 0, batch.stderr[-3000:]  # vLLM exits 0 whatever its lines got
    status = {r["custom_id"]: r["response"]["status_code"] for r in read_jsonl(results)}
    assert sorted(status.values()) == [200] * 4 + [400] * 2
    for name, rollouts in (("capped", capped), ("uncapped", uncapped)):
        check_exit(run_script("merge_and_map_batch.py", "map", "--rollouts", str(rollouts), "--results",
                              str(results), "--output", str(tmp_path / f"{name}.verified.jsonl")))
    verified = read_jsonl(tmp_path / "capped.verified.jsonl")
    # the small judge writes no <conclusion>: each reply is kept and said to have none
    assert all(r["verification_status"] in ("ok", "no_conclusion") and r["verification_response"]
               for r in verified)
    refused = read_jsonl(tmp_path / "uncapped.verified.jsonl")
    assert [r["verification_status"] for r in refused] == ["failed", "failed"]
