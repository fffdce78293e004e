"""Outages are waited out, and one that never ends stops the run with exit 3, nothing recorded as
failed, so a plain rerun does the rest. Scripts run as subprocesses against emulators that really
refuse connections (`--down-at/--down-for`)."""

from __future__ import annotations

from conftest import read_jsonl, run_script

from rollkit.emulator.datasets import write_questions
from rollkit.emulator.testing import run_emulator
from rollkit.inputs import entry_id, iter_inputs


def sampling_args(url: str, questions, output, *extra: str) -> list[str]:
    return ["--input_file", str(questions), "--output_file", str(output), "--model_name", "gen",
            "--base-url", f"{url}/v1", "--answers_per_question", "2", "--concurrency", "4",
            "--request-timeout", "3", "--backoff", "0.2", *extra]


def expected_ids(questions) -> set[str]:
    return {entry_id(item.record) for item in iter_inputs(questions)}


def written_ids(output) -> list[str]:
    return [r["entry_id"] for r in read_jsonl(output)]


def test_an_outage_at_start_is_waited_out(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 12)
    out = tmp_path / "out.jsonl"
    with run_emulator("--down-at", "0", "--down-for", "2.5") as url:
        done = run_script("sampling.py", *sampling_args(url, questions, out))
    assert done.returncode == 0, done.stderr
    assert sorted(written_ids(out)) == sorted(expected_ids(questions))
    assert read_jsonl(f"{out}.errors.jsonl") == []


def test_an_outage_mid_run_is_waited_out(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 40)
    out = tmp_path / "out.jsonl"
    with run_emulator("--latency-ms", "100", "--down-at", "1.5", "--down-for", "2.5") as url:
        done = run_script("sampling.py", *sampling_args(url, questions, out))
    assert done.returncode == 0, done.stderr
    assert sorted(written_ids(out)) == sorted(expected_ids(questions))
    assert read_jsonl(f"{out}.errors.jsonl") == []


def test_an_outage_that_never_ends_exits_3_and_a_plain_rerun_completes(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 40)
    out = tmp_path / "out.jsonl"
    with run_emulator("--latency-ms", "50", "--down-at", "1", "--down-for", "3600") as url:
        stopped = run_script("sampling.py", *sampling_args(url, questions, out, "--max-outage", "3"))
    port = url.rsplit(":", 1)[1]
    assert stopped.returncode == 3, stopped.stderr
    assert f"127.0.0.1:{port}" in stopped.stderr and "run the same command again" in stopped.stderr
    assert "test-key" not in stopped.stderr
    assert read_jsonl(f"{out}.errors.jsonl") == []  # nothing written off
    done_before = len(written_ids(out))
    assert done_before < 40
    with run_emulator() as url:
        rerun = run_script("sampling.py", *sampling_args(url, questions, out))
    assert rerun.returncode == 0, rerun.stderr
    ids = written_ids(out)
    assert len(ids) == len(set(ids)) and set(ids) == expected_ids(questions)
