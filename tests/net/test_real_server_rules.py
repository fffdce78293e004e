"""What real servers and models do (issue 15), against the emulator's rules for them, through the
real scripts over HTTP: reasoning models' parameter rules, a refusal that would refuse every record,
servers that ignore `n`, answers cut off at the token budget."""

from __future__ import annotations

import json

from rollkit.emulator.datasets import write_questions
from rollkit.emulator.testing import get_stats, run_emulator, run_emulators
from tests.support import read_jsonl, run_script

REASONING = ("--reasoning-rules", "--judge-garbage", "0")


def sampling_args(url: str, questions, output, *extra: str) -> list[str]:
    return ["--input_file", str(questions), "--output_file", str(output), "--model_name", "gen",
            "--base-url", f"{url}/v1", "--answers_per_question", "3", "--concurrency", "8",
            "--request-timeout", "10", *extra]


def summary_of(output) -> dict:
    return json.loads(open(f"{output}.summary.json").read())


def test_reject_and_score_with_an_o4_mini_judge(tmp_path, reject_args):
    questions = write_questions(tmp_path / "q.jsonl", 6)
    out, rescored = tmp_path / "out.jsonl", tmp_path / "rescored.jsonl"
    with run_emulator(*REASONING) as url:
        done = run_script("reject.py", *reject_args(url, questions, out), "--scorer_model", "o4-mini-2025-04-16",
                          "--reasoning-effort", "high")
        statuses = get_stats(url)["by_status"]
        again = run_script("score.py", "--input_file", str(out), "--output_file", str(rescored), "--model_name",
                           "o4-mini", "--base-url", f"{url}/v1", "--request-timeout", "10")
    assert done.returncode == 0 and again.returncode == 0, done.stderr + again.stderr
    assert set(statuses) == {"200"}  # not one request refused
    for path in (out, rescored):
        records = read_jsonl(path)
        assert len(records) == 6 and all(r["failed_scores"] == 0 and None not in r["generated_scores"]
                                         for r in records)
    requests = summary_of(out)["requests"]
    # 18 judge calls at effort high: 192 hidden tokens each (the emulator's rule), priced at o4-mini's
    assert requests["reasoning_tokens"] == 18 * 192
    assert abs(requests["reasoning_cost_usd"] - 18 * 192 * 4.40 / 1e6) < 1e-9 and requests["cost_usd"] > 0
    assert "reasoning)" in done.stderr and "hidden reasoning" in done.stderr
    assert summary_of(rescored)["requests"]["reasoning_tokens"] == 18 * 64  # effort medium by default


def test_rollout_with_an_o4_mini_answer_judge(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 3)
    out = tmp_path / "rollouts.jsonl"
    with run_emulator(*REASONING) as url:
        done = run_script("rollout.py", "--input", str(questions), "--output", str(out), "--base-url", f"{url}/v1",
                          "--model_name", "policy", "--num-rollouts", "2", "--num-mc", "2",
                          "--scoring-mode", "llm_judge", "--judge_model", "o4-mini", "--concurrency", "8",
                          "--request-timeout", "10")
        statuses = get_stats(url)["by_status"]
    assert done.returncode == 0, done.stderr
    assert set(statuses) == {"200"}
    assert len(read_jsonl(out)) == 6 and not read_jsonl(f"{out}.errors.jsonl")
    assert summary_of(out)["requests"]["reasoning_tokens"] > 0


def test_the_endpoints_file_overrides_the_name_rule_and_a_refused_parameter_stops_the_run(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 30)
    refused_out, out = tmp_path / "refused.jsonl", tmp_path / "out.jsonl"
    endpoints = tmp_path / "endpoints.toml"
    with run_emulator(*REASONING) as url:
        table = f'[[endpoint]]\nname = "judge"\nbase_url = "{url}/v1"\nmodel = "o4-mini"\n'
        endpoints.write_text(table + "reasoning = false\n")
        args = ["--input_file", str(questions), "--model_name", "o4-mini", "--endpoints", str(endpoints),
                "--concurrency", "64", "--temperature", "0.7"]
        refused = run_script("sampling.py", *args, "--output_file", str(refused_out))
        received = get_stats(url)["requests"]
        endpoints.write_text(table)  # the name rule: no temperature for o4-mini
        done = run_script("sampling.py", *args, "--output_file", str(out))
    assert refused.returncode == 2, refused.stderr
    assert "Unsupported value: 'temperature' does not support 0.7 with this model" in refused.stderr
    assert received <= 10 and not read_jsonl(refused_out) and not read_jsonl(f"{refused_out}.errors.jsonl")
    assert done.returncode == 0, done.stderr
    assert len(read_jsonl(out)) == 30


def test_a_mistyped_model_stops_the_run_and_the_fixed_command_does_every_record(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 40)
    out = tmp_path / "out.jsonl"
    with run_emulator("--models", "gen") as url:
        typo = sampling_args(url, questions, out, "--concurrency", "64")
        typo[typo.index("gen")] = "gne"
        refused = run_script("sampling.py", *typo)
        received = get_stats(url)["requests"]
        fixed = run_script("sampling.py", *sampling_args(url, questions, out, "--concurrency", "64"))
    assert refused.returncode == 2, refused.stderr
    assert "The model `gne` does not exist" in refused.stderr and "Nothing was written off" in refused.stderr
    assert received <= 10  # the first wave and the probe, whatever the concurrency
    assert fixed.returncode == 0, fixed.stderr
    assert len(read_jsonl(out)) == 40 and not read_jsonl(f"{out}.errors.jsonl")


def test_a_budget_over_the_context_stops_and_a_prompt_over_it_is_one_records_error(tmp_path):
    """Each refusal of the budget names its own request's token counts (OpenAI's wording): the
    probe's differs from the first's in its numbers only, and is the same refusal."""
    questions = write_questions(tmp_path / "q.jsonl", 40)
    long_one = {"uid": "long", "question": "Count the words. " + "word " * 3100, "answer": "3100"}
    with open(questions, "a") as f:
        f.write(json.dumps(long_one) + "\n")
    over, fine = tmp_path / "over.jsonl", tmp_path / "fine.jsonl"
    with run_emulator("--max-model-len", "3000") as url:
        refused = run_script("sampling.py", *sampling_args(url, questions, over, "--max-tokens", "8000",
                                                           "--concurrency", "64"))
        received = get_stats(url)["requests"]
        done = run_script("sampling.py", *sampling_args(url, questions, fine, "--max-tokens", "200",
                                                        "--concurrency", "64"))
    assert refused.returncode == 2, refused.stderr
    assert "maximum context length is 3000 tokens. However, you requested" in refused.stderr
    assert "Nothing was written off" in refused.stderr
    assert received <= 10  # the first wave and the probe, whatever the concurrency
    assert not read_jsonl(over) and not read_jsonl(f"{over}.errors.jsonl")
    assert done.returncode == 0, done.stderr
    errors = read_jsonl(f"{fine}.errors.jsonl")
    assert len(read_jsonl(fine)) == 40 and [e["reason"] for e in errors] == ["http_400"]
    assert "your prompt contains at least 3001 input tokens" in errors[0]["message"]


def test_servers_that_ignore_n_lose_no_sample(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 5)
    sampled, rollouts, alone = tmp_path / "sampled.jsonl", tmp_path / "rollouts.jsonl", tmp_path / "alone.jsonl"
    with run_emulators(["--ignore-n"], []) as (url, honest):
        done = run_script("sampling.py", *sampling_args(url, questions, sampled, "--answers_per_question", "4"))
        rolled = run_script("rollout.py", "--input", str(questions), "--output", str(rollouts), "--base-url",
                            f"{url}/v1", "--model_name", "policy", "--num-rollouts", "2", "--num-mc", "3",
                            "--scoring-mode", "vqav2_num_str_only_score", "--request-timeout", "10")
        no_n = run_script("sampling.py", *sampling_args(honest, questions, alone, "--answers_per_question", "4",
                                                        "--no-n"))
    assert done.returncode == rolled.returncode == no_n.returncode == 0, done.stderr + rolled.stderr
    assert "ignores n" in done.stderr and "127.0.0.1" in done.stderr  # the warning names the endpoint
    records = read_jsonl(sampled)
    assert len(records) == 5 and all(len(r["generated_answers"]) == 4 and r["failed_candidates"] == 0
                                     for r in records)
    # the missing samples were asked with their own seeds: the same answers --no-n draws
    by_id = {r["entry_id"]: r["generated_answers"] for r in read_jsonl(alone)}
    assert all(by_id[r["entry_id"]] == r["generated_answers"] for r in records)
    written = read_jsonl(rollouts)
    assert len(written) == 10 and not read_jsonl(f"{rollouts}.errors.jsonl")
    assert all(s["num_mc_total"] == 3 for r in written for s in r["steps_with_score"] if s.get("num_mc_total"))
    assert summary_of(sampled)["requests"]["n_ignored"] == 5 * 3


def test_answers_cut_off_at_the_budget_are_kept_with_their_siblings(tmp_path, reject_args):
    questions = write_questions(tmp_path / "q.jsonl", 8)
    kept, dropped = tmp_path / "kept.jsonl", tmp_path / "dropped.jsonl"
    with run_emulators(["--ramble", "0.4"], ["--judge-garbage", "0"]) as (url, judge):
        done = run_script("reject.py", *reject_args(url, questions, kept), "--max-tokens", "400",
                          "--scorer-base-url", f"{judge}/v1")
        without = run_script("sampling.py", *sampling_args(url, questions, dropped, "--max-tokens", "400",
                                                           "--drop-truncated"))
    assert done.returncode == without.returncode == 0, done.stderr + without.stderr
    records = read_jsonl(kept)
    assert len(records) == 8
    cut = [c for r in records for c in r["candidates"] if c["finish_reason"] == "length"]
    assert cut and all(c["ok"] for c in cut)
    assert all(len(r["generated_answers"]) == 3 == len(r["generated_scores"]) for r in records)
    assert all(None not in r["generated_scores"] for r in records)  # the judge scored them as they stand
    assert summary_of(kept)["requests"]["truncated"] == len(cut) == sum(r["cut_off_candidates"] for r in records)
    assert "cut off at the token budget" in done.stderr
    left = read_jsonl(dropped)
    assert sum(3 - len(r["generated_answers"]) for r in left) == sum(r["cut_off_candidates"] for r in left) > 0
    assert all(c.get("dropped") for r in left for c in r["candidates"] if c["finish_reason"] == "length")


def test_rollouts_cut_off_at_the_budget_are_recorded_as_cut_off_not_as_parse_failures(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 8)
    kept, dropped = tmp_path / "kept.jsonl", tmp_path / "dropped.jsonl"

    def rollout(url, output, *extra):
        return run_script("rollout.py", "--input", str(questions), "--output", str(output), "--base-url", f"{url}/v1",
                          "--model_name", "policy", "--num-rollouts", "3", "--num-mc", "2", "--max-tokens", "600",
                          "--scoring-mode", "vqav2_num_str_only_score", "--concurrency", "8",
                          "--request-timeout", "10", *extra)
    with run_emulator("--ramble", "0.4") as url:
        done = rollout(url, kept)
        without = rollout(url, dropped, "--drop-truncated")
    assert done.returncode == without.returncode == 0, done.stderr + without.stderr
    records = read_jsonl(kept)
    cut = {r["rollout_id"] for r in records if r["finish_reason"] == "length"}
    assert len(records) == 24 and 0 < len(cut) < 24 and not read_jsonl(f"{kept}.errors.jsonl")
    for record in records:
        if record["rollout_id"] in cut:  # kept as it stands, unscored, and not called a parse failure
            assert not record["parsing_failed"] and record["parsing_failed_reason"] is None
            assert record["steps_with_score"] == [] and record["first_incorrect_step"] is None
        else:
            assert record["finish_reason"] == "stop" and record["steps_with_score"]
    assert summary_of(kept)["records"]["truncated"] == len(cut) and f"{len(cut)} cut off at the token budget" in done.stderr
    # --drop-truncated: the same rollouts are left out, to the errors file, counted the same way
    left, errors = read_jsonl(dropped), read_jsonl(f"{dropped}.errors.jsonl")
    assert {r["rollout_id"] for r in left} == {r["rollout_id"] for r in records} - cut
    assert {e["rollout_id"] for e in errors} == cut and {e["reason"] for e in errors} == {"length"}
    assert "--drop-truncated left it out" in errors[0]["message"]
    summary = summary_of(dropped)["records"]
    assert summary["truncated"] == summary["failures"]["length"] == len(cut)


def test_each_kind_names_the_budget_its_servers_read_and_reasoning_models_get_no_sampling_parameters():
    from rollkit.net.endpoints import Endpoint

    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 16,
            "reasoning_effort": "low"}
    plain = Endpoint("o", "openai", "https://x", "gpt-4.1").shape_body(body)
    assert plain["max_completion_tokens"] == 16 and "max_tokens" not in plain and plain["temperature"] == 0
    assert "reasoning_effort" not in plain  # a chat model would refuse it
    local = Endpoint("l", "local", "http://127.0.0.1:1/v1", "o4-mini").shape_body(body)
    assert local["max_tokens"] == 16 and local["temperature"] == 0  # a local model's name says nothing
    for name in ("o4-mini-2025-04-16", "o3", "gpt-5-mini", "openai/o1"):
        shaped = Endpoint("o", "openai", "https://x", name).shape_body(body)
        assert "temperature" not in shaped and "max_tokens" not in shaped, name
        assert shaped["max_completion_tokens"] == 16 + 2048 and shaped["reasoning_effort"] == "low"
    for name in ("gpt-4o", "gpt-5-chat-latest", "o-series-proxy", "gpt-50"):
        assert Endpoint("o", "openai", "https://x", name).shape_body(body)["temperature"] == 0, name
    deployment = Endpoint("a", "azure", "https://x", "m", deployment="prod-judge", reasoning=True)
    assert "temperature" not in deployment.shape_body(body)
    assert Endpoint("a", "azure", "https://x", "o4-mini", deployment="o4-mini", reasoning=False
                    ).shape_body(body)["temperature"] == 0
