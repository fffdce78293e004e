"""batch_processor.py's operations: --expires-after, --cancel, Ctrl-C, connection errors at upload,
and services without files.list; all against the emulator over real HTTP."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import openai
import pytest

from rollkit.batch.processor import ledger_path
from rollkit.emulator.testing import get_stats, run_emulator
from rollkit.store.batch_ledger import FileLedger
from tests.support import read_jsonl, run_script, script_env, start_script
from tests.support.batch import FAST, ledger_events, make_rollouts

pytestmark = pytest.mark.timeout(150)


def packed(tmp_path: Path, files: int = 2, seed: int = 41, lines: int = 1) -> Path:
    """`files` files of `lines` lines (a stall fault needs two: it strikes after the first), packed
    for the OpenAI routes the tests run them on."""
    rollouts = make_rollouts(tmp_path / "in", questions=files * lines, per_question=1, seed=seed)
    batch_dir = tmp_path / "batches"
    done = run_script("merge_and_map_batch.py", "pack", "--rollouts", str(rollouts), "--out-dir", str(batch_dir),
                      "--model", "dep", "--max-lines", str(lines), "--target", "openai")
    assert done.returncode == 0, done.stderr
    return batch_dir


def processor_args(batch_dir: Path, url: str, *extra: str) -> list[str]:
    return ["--batch-dir", str(batch_dir), "--base-url", f"{url}/v1", "--model", "dep", "--check-interval", "0.01",
            "--no-progress", *extra]


def wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert predicate()


def test_expires_after_reaches_uploads_and_outputs_in_the_services_shape(tmp_path):
    batch_dir = packed(tmp_path)
    with run_emulator(*FAST) as url:
        done = run_script("batch_processor.py", *processor_args(batch_dir, url, "--expires-after", "2"))
        files = openai.OpenAI(base_url=f"{url}/v1", api_key="k").files.list()
    assert done.returncode == 0, done.stderr
    purposes = sorted(f.purpose for f in files)
    assert purposes == ["batch", "batch", "batch_output", "batch_output"]
    assert {f.expires_at - f.created_at for f in files} == {2 * 86_400}
    azure = run_script("batch_processor.py", "--batch-dir", str(batch_dir), "--azure-endpoint", "https://x.openai.azure.com",
                       "--model", "dep", "--expires-after", "2", env=script_env(AZURE_API_KEY="k"))
    assert azure.returncode == 2 and "azure keeps batch files 14 to 30 days" in azure.stderr


def test_ctrl_c_leaves_batches_running_and_cancel_cancels_them(tmp_path):
    batch_dir = packed(tmp_path, seed=42, lines=2)
    with run_emulator(*FAST, "--batch-fault-stall", "1") as url:
        args = processor_args(batch_dir, url, "--stale-after", "60")
        process = start_script("batch_processor.py", *args)
        wait_for(lambda: sum(e["kind"] == "created" for e in ledger_events(batch_dir)) == 2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="k")
        assert {b.status for b in client.batches.list()} <= {"validating", "in_progress"}  # still running
        cancel = run_script("batch_processor.py", *args, "--cancel")
        statuses = {b.status for b in client.batches.list()}
    assert process.returncode == 130, err
    assert "2 batches keep running" in err and "--cancel" in err and "resume polling" in err
    assert cancel.returncode == 0 and "cancelled 2 batches" in cancel.stdout, cancel.stderr
    assert statuses <= {"cancelling", "cancelled"}
    assert [e["reason"] for e in ledger_events(batch_dir) if e["kind"] == "cancel"] == ["asked", "asked"]


@pytest.mark.parametrize("parent_sigint", ["ignored", "blocked"])
def test_ctrl_c_stops_the_processor_whatever_its_parent_left_sigint_as(tmp_path, parent_sigint):
    """`nohup batch_processor.py ... &` from a script starts it with SIGINT ignored; Ctrl-C (here
    during the backoff between uploads that cannot connect) still stops it the usual way."""
    batch_dir = packed(tmp_path, files=1, seed=46)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = start_script("batch_processor.py", *processor_args(batch_dir, f"http://127.0.0.1:{port}"),
                           parent_sigint=parent_sigint)
    wait_for(lambda: any(e["kind"] == "upload_intent" for e in ledger_events(batch_dir)))
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "interrupted: 0 batches keep running" in err and "resume polling" in err


def test_an_upload_that_cannot_connect_is_tried_again_with_backoff(tmp_path):
    batch_dir = packed(tmp_path, files=1, seed=43)
    with socket.socket() as probe:  # a port nobody listens on, until the emulator starts there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = start_script("batch_processor.py", *processor_args(batch_dir, f"http://127.0.0.1:{port}"))
    wait_for(lambda: any(e["kind"] == "upload_intent" for e in ledger_events(batch_dir)))
    time.sleep(0.5)
    with run_emulator(*FAST, "--port", str(port)) as url:
        out, err = process.communicate(timeout=90)
        stats = get_stats(url, with_keys=False)["batch"]
    assert process.returncode == 0, err
    assert "could not connect; trying again" in err and "done: 1 files" in out
    assert list(stats["uploads_by_sha256"].values()) == [1] and stats["batches_created"] == 1


def crashed_during(batch_dir: Path, call: str) -> None:
    """The ledgers a crash during every file's upload (or create) leaves: an intent, no result."""
    manifest = json.loads((batch_dir / "manifest.json").read_text())
    for entry in manifest["files"]:
        ledger = FileLedger(ledger_path(batch_dir, entry["name"]), entry["name"]).open()
        attempt = f"{entry['name']}#1"
        ledger.record("submit", attempt=attempt, number=1, endpoint="default", path=entry["name"],
                      sha256=entry["sha256"], filename=f"{Path(entry['name']).stem}.{entry['sha256'][:12]}.jsonl",
                      lines=entry["lines"], tokens=entry["tokens"], bytes=entry["bytes"])
        ledger.record("upload_intent", attempt=attempt)
        if call == "create":
            ledger.record("uploaded", attempt=attempt, file_id="file-never-made")
            ledger.record("create_intent", attempt=attempt, input_file_id="file-never-made")
        ledger.close()


@pytest.mark.parametrize(("call", "flag", "warning"), [
    ("upload", "--batch-no-files-list", "does not list files"),
    ("create", "--batch-no-batches-list", "does not list batches"),
])
def test_a_service_without_list_calls_is_warned_about_once(tmp_path, call, flag, warning):
    batch_dir = packed(tmp_path, files=2, seed=44)
    crashed_during(batch_dir, call)
    with run_emulator(*FAST, flag) as url:
        done = run_script("batch_processor.py", *processor_args(batch_dir, url))
        stats = get_stats(url, with_keys=False)["batch"]
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(warning) == 1 and "done: 2 files" in done.stdout
    assert stats["lines_answered"] == 2 and not stats["answered_twice"]


def test_a_batch_the_service_does_not_know_is_not_asked_for_again_and_again(tmp_path):
    batch_dir = packed(tmp_path, files=1, seed=45, lines=2)
    with run_emulator(*FAST, "--batch-fault-stall", "1") as first:
        process = start_script("batch_processor.py", *processor_args(batch_dir, first, "--stale-after", "60"))
        wait_for(lambda: any(e["kind"] == "created" for e in ledger_events(batch_dir)))
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    with run_emulator(*FAST) as second:  # another server: it never heard of that batch
        done = run_script("batch_processor.py", *processor_args(batch_dir, second))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("No such batch") == 1 and "done: 1 files" in done.stdout
    results = [r for path in (batch_dir / "results").glob("*.output.jsonl") for r in read_jsonl(path)]
    assert len(results) == 2
