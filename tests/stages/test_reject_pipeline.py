"""reject.py, sampling.py and score.py end to end against the emulator over real HTTP."""

from __future__ import annotations

import json
import re

from rollkit.emulator.datasets import write_questions
from rollkit.emulator.testing import get_stats, run_emulator, run_emulators
from tests.support import read_jsonl, run_script, script_env

SEED_FIELDS = {"original_question", "original_answers", "generated_answers", "generated_scores", "entry_id"}


def test_reject_keeps_seed_fields_and_writes_sft(tmp_path, reject_args):
    questions = write_questions(tmp_path / "q.jsonl", 12, images=3)
    out, sft = tmp_path / "out.jsonl", tmp_path / "sft.jsonl"
    with run_emulator("--seed", "3") as url:
        done = run_script("reject.py", *reject_args(url, questions, out, "--min-score", "7", "--sft-output", str(sft)))
    assert done.returncode == 0, done.stderr
    records = read_jsonl(out)
    assert len(records) == 12 and len({r["entry_id"] for r in records}) == 12
    for record in records:
        assert SEED_FIELDS <= set(record) and "conversations" in record and "images" in record
        assert len(record["generated_scores"]) == len(record["generated_answers"]) == 3
        assert record["model"] == "emulator/gen"
    kept = read_jsonl(sft)
    assert len(kept) == sum(r["selected"] for r in records) > 0
    assert all(k["conversations"][-1]["from"] == "gpt" and k["images"] for k in kept)
    assert "reject summary" in done.stderr and "12 written" in done.stderr


def test_sampling_then_score_equals_reject(tmp_path, reject_args):
    questions = write_questions(tmp_path / "data" / "q.jsonl", 6, images=2, shape="question")
    # Outputs in another folder: the next stage still finds the images (through `image_root`).
    work = tmp_path / "work"
    sampled, scored, rejected = work / "s.jsonl", work / "sc.jsonl", work / "r.jsonl"
    with run_emulator("--seed", "4") as url:
        common = ["--base-url", f"{url}/v1", "--concurrency", "4"]
        first = run_script("sampling.py", "--input_file", str(questions), "--output_file", str(sampled),
                           "--model_name", "gen", "--answers_per_question", "3", *common)
        second = run_script("score.py", "--input_file", str(sampled), "--output_file", str(scored),
                            "--model_name", "judge", *common)
        third = run_script("reject.py", *reject_args(url, questions, rejected))
    assert first.returncode == second.returncode == third.returncode == 0, first.stderr + second.stderr
    by_id = {r["entry_id"]: r for r in read_jsonl(rejected)}
    for record in read_jsonl(scored):
        assert record["generated_scores"] == by_id[record["entry_id"]]["generated_scores"]
        assert record["question"] and record["answer"]  # input fields kept


def test_same_text_different_images_are_two_entries(tmp_path, reject_args):
    write_questions(tmp_path / "unused.jsonl", 1, images=2)
    rows = [{"conversations": [{"from": "human", "value": "How many cats?"}], "images": [f"images/img_0000{i}.png"]}
            for i in (0, 1)]
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps(rows))
    with run_emulator() as url:
        done = run_script("reject.py", *reject_args(url, questions, tmp_path / "out.jsonl"), "--no-n")
    assert done.returncode == 0, done.stderr
    records = read_jsonl(tmp_path / "out.jsonl")
    assert len({r["entry_id"] for r in records}) == 2
    assert all(len(r["generated_answers"]) == 3 for r in records)  # one request per sample with --no-n


def test_exact_duplicates_are_done_once_and_counted(tmp_path, reject_args):
    questions = write_questions(tmp_path / "q.jsonl", 3)
    questions.write_text(questions.read_text() * 2)
    with run_emulator() as url:
        done = run_script("reject.py", *reject_args(url, questions, tmp_path / "out.jsonl"))
    assert done.returncode == 0, done.stderr
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 3
    assert "3 duplicates" in done.stderr


def test_dry_run_calls_nothing(tmp_path, reject_args):
    questions = write_questions(tmp_path / "q.jsonl", 5, images=1)
    with run_emulator() as url:
        done = run_script("reject.py", *reject_args(url, questions, tmp_path / "out.jsonl"), "--dry-run",
                          "--price-in", "1", "--price-out", "2")
        separate = run_script("reject.py", *reject_args(url, questions, tmp_path / "out.jsonl"), "--dry-run", "--no-n")
        assert get_stats(url)["requests"] == 0
    assert done.returncode == 0, done.stderr
    # 3 candidates in one request with n, then 3 judge calls; --no-n sends the 3 samples apart
    assert "5 records" in done.stdout and "20 requests" in done.stdout and "$" in done.stdout
    assert "30 requests" in separate.stdout
    prompt_tokens = [int(re.search(r"prompt tokens\s+([\d,]+)", out.stdout)[1].replace(",", ""))
                     for out in (done, separate)]
    assert prompt_tokens[0] < prompt_tokens[1]  # the question and its image are paid once, not 3 times
    assert not (tmp_path / "out.jsonl").exists()


def test_sentinel_key_never_leaves_the_process(tmp_path, reject_args):
    sentinel = "sk-SENTINEL-4f9a2c7e1b"
    questions = write_questions(tmp_path / "q.jsonl", 4, images=1)
    env = script_env(OPENAI_API_KEY=sentinel)
    with run_emulator("--fault-500", "0.2", "--fault-content-filter", "0.2") as url:
        done = run_script("reject.py", *reject_args(url, questions, tmp_path / "out.jsonl"), "-v", "--backoff", "0.05",
                          env=env)
        refused = run_script("reject.py", *reject_args(url.replace("127.0.0.1", "localhost"), questions,
                                                       tmp_path / "out2.jsonl"), env=env)
    with run_emulator("--require-key", "another-key") as url:
        unauthorized = run_script("reject.py", *reject_args(url, questions, tmp_path / "out3.jsonl"), env=env)
    assert unauthorized.returncode == 1 and "refused the credentials" in unauthorized.stderr
    assert "OPENAI_API_KEY" in unauthorized.stderr
    for stream in (done.stdout, done.stderr, refused.stdout, refused.stderr, unauthorized.stdout, unauthorized.stderr):
        assert sentinel not in stream
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert sentinel.encode() not in path.read_bytes(), path


def test_azure_flags_use_deployments_and_the_api_key_header(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 3)
    out = tmp_path / "out.jsonl"
    env = script_env(AZURE_API_KEY="azure-test-key")
    with run_emulator("--require-key", "azure-test-key") as url:
        done = run_script("reject.py", "--input_file", str(questions), "--output_file", str(out),
                          "--generator_model", "gen-deployment", "--scorer_model", "judge-deployment",
                          "--azure-endpoint", url, "--api-version", "2024-10-21", env=env)
    assert done.returncode == 0, done.stderr
    records = read_jsonl(out)
    assert len(records) == 3
    assert {r["model"] for r in records} == {"emulator/gen-deployment"}
    assert {r["scorer_model"] for r in records} == {"emulator/judge-deployment"}


def test_endpoints_file_spreads_requests_over_every_endpoint(tmp_path, reject_args):
    questions = write_questions(tmp_path / "q.jsonl", 12)
    out = tmp_path / "out.jsonl"
    with run_emulators([], []) as urls:
        tables = [f'[[endpoint]]\nname = "node{i}"\nkind = "local"\nbase_url = "{url}/v1"\nrpm = 6000\ntpm = 6000000\n'
                  for i, url in enumerate(urls)]
        config = tmp_path / "endpoints.toml"
        config.write_text("\n".join(tables))
        args = [a for a in reject_args(urls[0], questions, out) if a not in ("--base-url", f"{urls[0]}/v1")]
        done = run_script("reject.py", *args, "--endpoints", str(config))
        served = [get_stats(url, with_keys=False)["completed"] for url in urls]
    assert done.returncode == 0, done.stderr
    assert len(read_jsonl(out)) == 12
    assert sum(served) == 12 * (1 + 3) and min(served) > 0, served  # 3 samples in one request, 3 scores


def test_the_seeds_commands_run_unchanged_against_local_ports(tmp_path):
    questions = tmp_path / "input.json"
    write_questions(tmp_path / "q.jsonl", 4)
    questions.write_text(json.dumps(read_jsonl(tmp_path / "q.jsonl")))
    env = script_env()
    env.pop("OPENAI_API_KEY")  # local servers need no key
    with run_emulators(["--no-auth"], ["--no-auth"]) as (generator, scorer):
        gen_port, judge_port = generator.rsplit(":", 1)[1], scorer.rsplit(":", 1)[1]
        sampled = run_script("sampling.py", "--input_file", str(questions), "--output_file", str(tmp_path / "s.jsonl"),
                             "--model_name", "gen", "--port", gen_port, "--concurrent_requests", "10",
                             "--answers_per_question", "3", env=env)
        scored = run_script("score.py", "--input_file", str(tmp_path / "s.jsonl"), "--output_file",
                            str(tmp_path / "sc.jsonl"), "--model_name", "judge", "--api_port", judge_port,
                            "--concurrency", "10", env=env)
        rejected = run_script("reject.py", "--input_file", str(questions), "--output_file", str(tmp_path / "f.jsonl"),
                              "--cache_file", str(tmp_path / "cache.jsonl"), "--generator_model", "gen",
                              "--scorer_model", "judge", "--generator_port", gen_port, "--scorer_port", judge_port,
                              "--concurrency", "5", "--answers_per_question", "4", env=env)
    for done in (sampled, scored, rejected):
        assert done.returncode == 0, done.stderr
    assert len(read_jsonl(tmp_path / "sc.jsonl")) == len(read_jsonl(tmp_path / "f.jsonl")) == 4
    assert (tmp_path / "cache.jsonl").stat().st_size > 0  # --cache_file is the request journal
