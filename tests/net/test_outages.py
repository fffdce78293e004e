"""Down or slow: outages are waited out, and one that never ends stops the run with exit 3, nothing
recorded as failed, so a plain rerun does the rest; slow is not down: a healthy server that
generates slowly is waited for, a request our timeout cut off is counted as possibly billed and
resent only as the summary shows, and only a server that does not answer a probe either is an
outage. Scripts and the real client against emulators that really refuse connections
(`--down-at/--down-for`), generate at a set speed (`--tokens-per-second`) or hang
(`/_emulator/down?mode=hang`)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from rollkit.content.inputs import entry_id, iter_inputs
from rollkit.emulator.datasets import write_questions
from rollkit.emulator.testing import get_stats, go_down, run_emulator
from rollkit.net.client import ChatClient, OutageError
from rollkit.net.endpoints import Endpoint, EndpointPool
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
        # Down until the processor has stopped, not for a set time: each failing poll takes the SDK's
        # three retries (up to 3.5 s) and a tick polls both batches, so it stops 6-7 s in when idle
        # and later on a loaded machine; a set 8 s outage could end first and the run then finished.
        go_down(url, 3600)
        _, stderr = process.communicate(timeout=60)
        port = url.rsplit(":", 1)[1]
        assert process.returncode == 3, stderr
        assert f"127.0.0.1:{port}" in stderr and "run the same command again" in stderr
        assert "test-key" not in stderr
        go_down(url, 0)  # back up
        rerun = run_script("batch_processor.py", *args)
        assert rerun.returncode == 0, rerun.stderr
        stats = get_stats(url)["batch"]
    assert "done: 2 files" in rerun.stdout
    assert set(stats["uploads_by_sha256"].values()) == {1} and set(stats["created_by_sha256"].values()) == {1}
    assert stats["lines_answered"] == 8 and not stats["answered_twice"]


# Slow is not down ---------------------------------------------------------------------------

def sample_slowly(tmp_path, questions: int, tokens_per_second: int, *extra: str) -> tuple:
    """sampling.py on `questions` questions against a healthy server generating at `tokens_per_second`,
    in the issue's command (the seed's --port, a local server; 4 answers a question): the finished
    run, its output, what the server saw and the summary's request counts."""
    out = tmp_path / "out.jsonl"
    questions_file = write_questions(tmp_path / "q.jsonl", questions)
    with run_emulator("--tokens-per-second", str(tokens_per_second), "--no-auth") as url:
        done = run_script("sampling.py", "--input_file", str(questions_file), "--output_file", str(out),
                          "--model_name", "gen", "--port", url.rsplit(":", 1)[1], "--answers_per_question", "4",
                          "--concurrency", "4", "--backoff", "0.1", *extra)
        served = get_stats(url, with_keys=False)
    summary = Path(f"{out}.summary.json")  # absent if the run broke: the caller's status check says why
    return done, out, served, json.loads(summary.read_text())["requests"] if summary.exists() else {}


def test_a_slow_healthy_server_is_waited_for_not_called_an_outage(tmp_path):
    # Answers of ~150-250 tokens at 60 tokens/s take 3-4 s; the timeout is 1.2 s. Before, every
    # request was cut off and sent again every 1.2 s until the run stopped: "every endpoint has
    # been unreachable". Now each cut-off is probed (the server answers), counted, and resent with
    # the timeout doubled (1.2, 2.4, 4.8 s), so every record is done.
    done, out, served, requests = sample_slowly(tmp_path, 6, 60, "--request-timeout", "1.2", "--max-outage", "2")
    assert done.returncode == 0, done.stderr
    records = read_jsonl(out)
    assert len(records) == 6 and all(len(r["generated_answers"]) == 4 for r in records)
    assert read_jsonl(f"{out}.errors.jsonl") == []
    assert requests["cut_off"] >= 6 and requests["resent_after_cut_off"] == requests["cut_off"]
    assert "possibly billed" in done.stderr and "sent again" in done.stderr
    assert served["most_attempts"] <= 3  # the first send and at most --cut-off-resends (2) more
    assert served["by_status"].get("client_closed", 0) == requests["cut_off"]


def test_resending_after_a_cut_off_is_bounded_and_the_record_says_why(tmp_path):
    done, out, served, requests = sample_slowly(tmp_path, 3, 40, "--request-timeout", "0.5", "--cut-off-resends", "1")
    # each record is recorded as a permanent error, and a run where all of them failed is not a quiet 0
    assert done.returncode == 1 and "no record done: 3 failed (cut_off 3)" in done.stderr, done.stderr
    errors = read_jsonl(f"{out}.errors.jsonl")
    assert len(errors) == 3 and {e["reason"] for e in errors} == {"cut_off"}
    assert all("possibly billed" in e["message"] and "--request-timeout" in e["message"] for e in errors)
    assert served["most_attempts"] == 2 and served["completed"] == 0
    assert requests["cut_off"] == 6 and requests["resent_after_cut_off"] == 3


def body(index: int) -> dict:
    return {"model": "m", "max_tokens": 400, "messages": [{"role": "user", "content": f"Say {index}."}]}


async def send(url: str, requests: int, **client_args) -> list:
    pool = EndpointPool([Endpoint("e", "local", f"{url}/v1", "m")])
    async with ChatClient(pool, None, concurrency=4, backoff=0.05, **client_args) as client:
        return await asyncio.gather(*(client.complete(body(i)) for i in range(requests)))


def test_a_server_that_takes_requests_and_answers_nothing_is_an_outage():
    # A frozen server process: connections are taken, nothing is answered, not even the probe.
    with run_emulator("--no-auth") as url:
        go_down(url, 60, mode="hang")
        with pytest.raises(OutageError, match="unreachable"):
            asyncio.run(send(url, 4, timeout=0.3, max_outage=1.5))


def test_a_hang_that_ends_is_waited_out_and_every_request_is_answered():
    with run_emulator("--no-auth") as url:
        go_down(url, 2, mode="hang")
        results = asyncio.run(send(url, 8, timeout=0.3, max_outage=30))
    assert all(r.ok for r in results)
