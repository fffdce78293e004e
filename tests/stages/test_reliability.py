"""Crashes, faults and bad input: nothing lost, nothing paid twice, every failure has a reason."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from rollkit.content.inputs import entry_id, iter_inputs
from rollkit.emulator.datasets import write_questions
from rollkit.emulator.testing import get_stats, run_emulator
from tests.support import count_lines, crash_and_resume, read_jsonl, run_script, start_script

# A metered server (headers present), so injected 429s are read as the pauses they ask for, not as
# a rate to learn from 429s alone (see tests/net/test_pacing.py for that).
FAULTS = ["--rpm", "100000", "--fault-429", "0.1", "--fault-500", "0.1", "--fault-timeout", "0.1", "--fault-reset", "0.1",
          "--fault-malformed", "0.1", "--fault-content-filter", "0.1", "--fault-length", "0.1",
          "--timeout-sleep", "4"]


def by_id(path) -> dict:
    records = read_jsonl(path)
    ids = [r["entry_id"] for r in records]
    assert len(ids) == len(set(ids)), "duplicate ids in output"
    return {r["entry_id"]: r for r in records}


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted_run(tmp_path, reject_args):
    questions = write_questions(tmp_path / "q.jsonl", 40, images=4)
    clean, crashed = tmp_path / "clean.jsonl", tmp_path / "crashed.jsonl"
    with run_emulator("--seed", "5", "--latency-ms", "40") as url:
        run = crash_and_resume(url, "reject.py", reject_args(url, questions, clean), reject_args(url, questions, crashed),
                               f"{crashed}.journal.jsonl", kills=3, seed=11, replies=(5, 50))
    assert run.written_before_finish < 40, "the kills came too late to test anything"
    assert run.finished.returncode == 0, run.finished.stderr
    assert by_id(crashed) == by_id(clean)
    assert len(by_id(clean)) == 40
    # Only requests in flight at a kill can be served twice: at most `--concurrency` per kill, for
    # both roles together (generator and judge share the bound).
    assert run.stats["duplicates"] <= 3 * 8
    assert run.stats["completed"] <= run.clean_stats["completed"] + 3 * 8
    journal_keys = [e["key"] for e in read_jsonl(f"{crashed}.journal.jsonl")]
    assert len(journal_keys) == len(set(journal_keys)), "a journaled reply was paid for again"


def test_fault_mix_every_record_done_or_recorded_with_reason(tmp_path, reject_args):
    questions = write_questions(tmp_path / "q.jsonl", 30, images=2)
    out = tmp_path / "out.jsonl"
    with run_emulator("--seed", "8", *FAULTS) as url:
        done = run_script("reject.py", *reject_args(url, questions, out, "--request-timeout", "1",
                                                    "--backoff", "0.05", "--max-attempts", "6"), timeout=240)
    assert done.returncode == 0, done.stderr
    written = by_id(out)
    errors = read_jsonl(f"{out}.errors.jsonl")
    failed = {e["entry_id"] for e in errors}
    expected = {entry_id(item.record) for item in iter_inputs(questions)}
    assert set(written) | failed == expected and not set(written) & failed
    assert all(e["reason"] and e["message"] for e in errors)
    incomplete = [r for r in written.values() if r["incomplete"]]
    for record in incomplete:
        reasons = [c["reason"] for c in record["candidates"] if not c["ok"]]
        reasons += [f["reason"] for f in record["judge_failures"] if f]
        assert reasons and all(reasons)
    assert "answered 429" in done.stderr


def test_retry_failed_redoes_only_failures(tmp_path, reject_args):
    questions = write_questions(tmp_path / "q.jsonl", 10)
    out = tmp_path / "out.jsonl"
    with run_emulator("--seed", "2", "--fault-content-filter", "0.3") as url:
        assert run_script("reject.py", *reject_args(url, questions, out)).returncode == 0
    first = by_id(out)
    redo = {k for k, r in first.items() if r["incomplete"]} | {e["entry_id"] for e in read_jsonl(f"{out}.errors.jsonl")}
    assert redo
    with run_emulator("--seed", "2") as url:
        again = run_script("reject.py", *reject_args(url, questions, out))
        assert get_stats(url)["requests"] == 0  # without the flag, failures stay failures
        retried = run_script("reject.py", *reject_args(url, questions, out, "--retry-failed"))
    assert again.returncode == retried.returncode == 0, retried.stderr
    final = by_id(out)
    assert len(final) == 10 and not any(r["incomplete"] for r in final.values())
    assert all(final[k] == first[k] for k in first if k not in redo)


def test_bad_input_gets_clear_messages_and_the_run_continues(tmp_path, reject_args):
    write_questions(tmp_path / "unused.jsonl", 1, images=1)
    good = {"conversations": [{"from": "human", "value": "How many dogs?"}], "images": ["images/img_00000.png"]}
    lines = [json.dumps(good), "{not json", json.dumps([1, 2]), json.dumps({"images": []}),
             json.dumps({"question": "Where?", "image": "images/missing.png"}),
             json.dumps({"question": 42}), json.dumps({"question": "Fine?", "images": "one.png"}),
             json.dumps({"question": "And this one?"})]
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    with run_emulator() as url:
        done = run_script("reject.py", *reject_args(url, questions, out))
    assert done.returncode == 0, done.stderr
    assert len(read_jsonl(out)) == 2
    errors = read_jsonl(f"{out}.errors.jsonl")
    assert sorted(e["line"] for e in errors) == [2, 3, 4, 5, 6, 7]
    for line in (2, 3, 4, 6, 7):
        assert f"q.jsonl:{line}" in done.stderr
    assert "missing.png" in done.stderr and "image not found" in done.stderr


def test_second_writer_is_refused_with_the_holders_pid(tmp_path, reject_args):
    questions = write_questions(tmp_path / "q.jsonl", 30)
    out = tmp_path / "out.jsonl"
    with run_emulator("--latency-ms", "200") as url:
        first = start_script("reject.py", *reject_args(url, questions, out))
        time.sleep(1.5)
        second = run_script("reject.py", *reject_args(url, questions, out))
        first.communicate(timeout=120)
    assert second.returncode == 1
    assert f"pid {first.pid}" in second.stderr


def test_ctrl_c_stops_a_stage_started_with_sigint_ignored(tmp_path, reject_args):
    """A script run as `nohup reject.py ... &` starts with SIGINT ignored (and asyncio then adds no
    Ctrl-C handling of its own): SIGINT still stops it the usual way, keeping what is finished."""
    questions = write_questions(tmp_path / "q.jsonl", 40)
    out = tmp_path / "out.jsonl"
    journal = f"{out}.journal.jsonl"
    with run_emulator("--latency-ms", "300") as url:
        process = start_script("reject.py", *reject_args(url, questions, out), parent_sigint="ignored")
        deadline = time.monotonic() + 60
        while count_lines(journal) < 3 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=30)
        finally:
            process.kill()
    assert process.returncode == 130, err
    assert "interrupted: finished work is saved" in err
    assert count_lines(journal) >= 3 and len(read_jsonl(out)) < 40


def script_catches_sigint(pid: int, script: str) -> bool:
    """/proc's view of the process: the launcher has exec'd `script`, and it has installed a SIGINT
    handler (SigCgt, the bit for signal 2)."""
    argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    if len(argv) < 2 or not argv[1].endswith(script):
        return False  # not exec'd yet, or still the launcher (python -I -c ... script)
    status = Path(f"/proc/{pid}/status").read_text()
    return bool(int(status.split("SigCgt:")[1].split()[0], 16) & (1 << (signal.SIGINT - 1)))


@pytest.mark.parametrize("script", ["reject.py", "batch_processor.py"])
def test_ctrl_c_while_a_script_still_imports_stops_it(tmp_path, reject_args, script):
    """Started with SIGINT ignored, a script takes Ctrl-C before its imports (a second or so of them),
    not only once its stage runs: a SIGINT sent as soon as the handler shows stops it there."""
    questions = write_questions(tmp_path / "q.jsonl", 4)
    args = (reject_args("http://127.0.0.1:9", questions, tmp_path / "out.jsonl") if script == "reject.py"
            else ["--batch-dir", str(tmp_path), "--model", "m", "--base-url", "http://127.0.0.1:9/v1"])
    process = start_script(script, *args, parent_sigint="ignored")
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None and not script_catches_sigint(process.pid, script) and time.monotonic() < deadline:
            time.sleep(0.002)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "interrupted while starting: nothing was done" in err
    assert not (tmp_path / "out.jsonl").exists()
