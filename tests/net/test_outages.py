"""Outages are waited out, and one that never ends stops the run with exit 3, nothing recorded as
failed, so a plain rerun does the rest. Scripts run as subprocesses against emulators that really
refuse connections (`--down-at/--down-for`)."""

from __future__ import annotations

import time

from rollkit.content.inputs import entry_id, iter_inputs
from rollkit.emulator.datasets import write_questions
from rollkit.emulator.testing import get_stats, go_down, run_emulator
from tests.support import read_jsonl, run_script, start_script


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


def test_the_batch_processor_stops_with_exit_3_in_an_outage_and_a_rerun_resumes_its_batches(tmp_path):
    # The outage starts once both batches exist; the service keeps running them while its API is
    # cut, and the rerun picks them up from the ledgers: nothing uploaded, created or answered twice.
    from tests.support.batch import FAST, ledger_events, make_rollouts, pack

    rollouts = make_rollouts(tmp_path / "in", questions=4, per_question=2, seed=3)
    batch_dir = tmp_path / "batches"
    pack(rollouts, batch_dir, model="dep", lines=4)
    with run_emulator(*FAST, "--batch-time-scale", "2") as url:
        args = ["--batch-dir", str(batch_dir), "--base-url", f"{url}/v1", "--model", "dep",
                "--check-interval", "0.005", "--no-progress"]
        process = start_script("batch_processor.py", *args, "--max-outage", "2")
        deadline = time.monotonic() + 30
        while sum(e["kind"] == "created" for e in ledger_events(batch_dir)) < 2:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        go_down(url, 8)
        back_up = time.monotonic() + 8.2
        _, stderr = process.communicate(timeout=60)
        port = url.rsplit(":", 1)[1]
        assert process.returncode == 3, stderr
        assert f"127.0.0.1:{port}" in stderr and "run the same command again" in stderr
        assert "test-key" not in stderr
        time.sleep(max(0.0, back_up - time.monotonic()))
        rerun = run_script("batch_processor.py", *args)
        assert rerun.returncode == 0, rerun.stderr
        stats = get_stats(url)["batch"]
    assert "done: 2 files" in rerun.stdout
    assert set(stats["uploads_by_sha256"].values()) == {1} and set(stats["created_by_sha256"].values()) == {1}
    assert stats["lines_answered"] == 8 and not stats["answered_twice"]
