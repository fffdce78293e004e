"""Slow is not down: a healthy server that generates slowly is waited for, a request our timeout cut
off is counted as possibly billed and resent only as the summary shows, and only a server that
does not answer a probe either is an outage. Scripts and the real client against emulators that
generate at a set speed (`--tokens-per-second`) or hang (`/_emulator/down?mode=hang`)."""

from __future__ import annotations

import asyncio
import json

import pytest

from rollkit.emulator.datasets import write_questions
from rollkit.emulator.testing import get_stats, go_down, run_emulator
from rollkit.net.client import ChatClient, OutageError
from rollkit.net.endpoints import Endpoint, EndpointPool
from tests.support import read_jsonl, run_script


def sampling_args(url: str, questions, output, *extra: str) -> list[str]:
    # The command: the seed's --port (a local server), 4 answers a question.
    return ["--input_file", str(questions), "--output_file", str(output), "--model_name", "gen",
            "--port", url.rsplit(":", 1)[1], "--answers_per_question", "4", "--concurrency", "4",
            "--backoff", "0.1", *extra]


def test_a_slow_healthy_server_is_waited_for_not_called_an_outage(tmp_path):
    # Answers of ~150-250 tokens at 60 tokens/s take 3-4 s; the timeout is 1.2 s. Before, every
    # request was cut off and sent again every 1.2 s until the run stopped: "every endpoint has
    # been unreachable". Now each cut-off is probed (the server answers), counted, and resent with
    # the timeout doubled (1.2, 2.4, 4.8 s), so every record is done.
    questions = write_questions(tmp_path / "q.jsonl", 6)
    out = tmp_path / "out.jsonl"
    with run_emulator("--tokens-per-second", "60", "--no-auth") as url:
        done = run_script("sampling.py", *sampling_args(url, questions, out, "--request-timeout", "1.2",
                                                        "--max-outage", "2"))
        served = get_stats(url, with_keys=False)
    assert done.returncode == 0, done.stderr
    records = read_jsonl(out)
    assert len(records) == 6 and all(len(r["generated_answers"]) == 4 for r in records)
    assert read_jsonl(f"{out}.errors.jsonl") == []
    requests = json.loads((tmp_path / "out.jsonl.summary.json").read_text())["requests"]
    assert requests["cut_off"] >= 6 and requests["resent_after_cut_off"] == requests["cut_off"]
    assert "possibly billed" in done.stderr and "sent again" in done.stderr
    assert served["most_attempts"] <= 3  # the first send and at most --cut-off-resends (2) more
    assert served["by_status"].get("client_closed", 0) == requests["cut_off"]


def test_resending_after_a_cut_off_is_bounded_and_the_record_says_why(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 3)
    out = tmp_path / "out.jsonl"
    with run_emulator("--tokens-per-second", "40", "--no-auth") as url:
        done = run_script("sampling.py", *sampling_args(url, questions, out, "--request-timeout", "0.5",
                                                        "--cut-off-resends", "1"))
        served = get_stats(url, with_keys=False)
    # each record is recorded as a permanent error, and a run where all of them failed is not a quiet 0
    assert done.returncode == 1 and "no record done: 3 failed (cut_off 3)" in done.stderr, done.stderr
    errors = read_jsonl(f"{out}.errors.jsonl")
    assert len(errors) == 3 and {e["reason"] for e in errors} == {"cut_off"}
    assert all("possibly billed" in e["message"] and "--request-timeout" in e["message"] for e in errors)
    assert served["most_attempts"] == 2 and served["completed"] == 0
    requests = json.loads((tmp_path / "out.jsonl.summary.json").read_text())["requests"]
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
