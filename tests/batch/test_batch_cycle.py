"""The whole cycle against emulators with faults on: pack, process on three endpoints with SIGKILLs,
map; and the crash windows of the processor, stalled batches, --status and run_batch_processor.sh."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import openai
import pytest

import batch_processor
from rollkit.batch.service import BatchService
from rollkit.emulator.testing import get_stats, run_emulator, run_emulators
from rollkit.emulator.tokens import count_prompt_tokens
from tests.support import ROOT, read_jsonl, run_script, script_env, start_script
from tests.support.batch import (
    FAST,
    created_by_endpoint,
    endpoints_toml,
    expected_verdict,
    ledger_events,
    make_rollouts,
    pack,
)

pytestmark = pytest.mark.timeout(150)













def test_full_cycle_with_faults_and_two_sigkills(tmp_path):
    rollouts = make_rollouts(tmp_path / "in", questions=20, per_question=2, seed=5)
    batch_dir = tmp_path / "batches"
    manifest = pack(rollouts, batch_dir)
    assert len(manifest["files"]) == 8
    prompt_tokens = max(sum(count_prompt_tokens(json.loads(line)["body"]) for line in
                            (batch_dir / f["name"]).read_text().splitlines()) for f in manifest["files"])
    quota = str(int(prompt_tokens * 1.5))  # one file at a time per deployment
    servers = {"a": [*FAST, "--batch-enqueued-tokens", quota, "--batch-fail-fast", "--batch-fault-line-500", "0.15"],
               "b": [*FAST, "--batch-enqueued-tokens", quota, "--batch-fault-expire", "0.25", "--batch-fault-fail",
                     "0.2", "--batch-fault-content-filter", "0.08"],
               "c": [*FAST, "--batch-fault-stall", "0.3"]}
    with run_emulators(*servers.values()) as started:
        urls = dict(zip(servers, started, strict=True))
        toml = endpoints_toml(tmp_path / "endpoints.toml", urls)
        args = ["--batch-dir", str(batch_dir), "--endpoints", str(toml), "--check-interval", "0.01",
                "--stale-after", "0.05", "--max-attempts", "10", "--no-progress"]
        env = script_env(KEY_A="key-a", KEY_B="key-b", KEY_C="key-c")
        for pause in (0.9, 1.4):  # SIGKILL twice, at different moments of the run
            process = start_script("batch_processor.py", *args, env=env)
            time.sleep(pause)
            assert process.poll() is None, process.communicate()
            process.send_signal(signal.SIGKILL)
            process.wait()
        done = run_script("batch_processor.py", *args, env=env, timeout=90)
        assert done.returncode == 0, done.stderr
        assert "done: 8 files" in done.stdout
        stats = {name: get_stats(url, with_keys=False)["batch"] for name, url in urls.items()}
        listed = {name: {b.id for b in openai.OpenAI(base_url=f"{url}/v1", api_key="k").batches.list(limit=1000)}
                  for name, url in urls.items()}
    # nothing was uploaded twice, and every batch a service made is one the ledger knows
    assert all(set(s["uploads_by_sha256"].values()) == {1} for s in stats.values())
    created = created_by_endpoint(batch_dir)
    assert {name: dict(c) for name, c in created.items()} == \
        {name: s["created_by_sha256"] for name, s in stats.items() if s["created_by_sha256"]}
    known = {e["batch_id"] for e in ledger_events(batch_dir) if e["kind"] == "created"}
    assert set().union(*listed.values()) == known
    # every rollout has a verdict or a recorded reason, and no line was paid for twice
    mapped = run_script("merge_and_map_batch.py", "map", "--rollouts", str(rollouts), "--results",
                        str(batch_dir / "results"), "--output", str(tmp_path / "verified.jsonl"))
    assert mapped.returncode == 0, mapped.stderr
    out = read_jsonl(tmp_path / "verified.jsonl")
    assert len(out) == 40 and {r["verification_status"] for r in out} <= {"ok", "refused"}
    # the run met faults and got through them; which ones depends on which endpoint took which file,
    # which is timing, so any counts: a refused create, a batch failed, expired or stalled, a line
    # answered 500 or refused by the content filter
    assert stats["a"]["refused_creates"] + sum(n for s in stats.values() for n in s["faults"].values()) >= 1
    ok = [r for r in out if r["verification_status"] == "ok"]
    assert sum(s["lines_answered"] for s in stats.values()) == len(ok) >= 30
    assert all(not s["answered_twice"] for s in stats.values())
    for record in ok:
        conclusion, first = expected_verdict(record)
        assert record["conclusion"] is conclusion
        assert (record["judge_first_incorrect_step"] or {}).get("step") == first
    assert all(r["verification_error"].startswith("content_filter") for r in out if r["verification_status"] == "refused")
    table = run_script("batch_processor.py", "--batch-dir", str(batch_dir), "--status").stdout
    rows = table.splitlines()
    assert rows[0].split()[:5] == ["file", "lines", "endpoint", "batch", "state"]
    assert sum(row.split()[4] == "done" for row in rows[1:]) == 8, table


class Died(BaseException):
    """The process ends right here, after the call returned and before the ledger saw its result."""


def die_after(method):
    def wrapper(self, *args, **kwargs):
        method(self, *args, **kwargs)
        raise Died()
    return wrapper


def test_death_right_after_upload_or_create_is_reconciled(tmp_path, monkeypatch):
    rollouts = make_rollouts(tmp_path / "in", questions=3, per_question=2, seed=6)
    batch_dir = tmp_path / "batches"
    pack(rollouts, batch_dir, model="dep", lines=3)
    monkeypatch.setenv("AZURE_API_KEY", "k")
    with run_emulator(*FAST) as url:
        argv = ["--batch-dir", str(batch_dir), "--azure-endpoint", url, "--model", "dep",
                "--check-interval", "0.005", "--no-progress"]
        for name in ("upload", "create"):
            with monkeypatch.context() as patch:
                patch.setattr(BatchService, name, die_after(getattr(BatchService, name)))
                with pytest.raises(Died):
                    batch_processor.main(argv)
        time.sleep(0.5)  # the batch whose creation went unrecorded finishes before the restart
        assert batch_processor.main(argv) == 0
        stats = get_stats(url)["batch"]
    assert list(stats["uploads_by_sha256"].values()) == [1, 1]
    assert list(stats["created_by_sha256"].values()) == [1, 1]
    assert stats["lines_answered"] == 6 and not stats["answered_twice"]
    assert len(list((batch_dir / "results").glob("*.output.jsonl"))) == 2
    events = ledger_events(batch_dir)
    # file 0: its upload was found by files.list, its batch by batches.list; file 1 ran normally
    assert [e["kind"] for e in events if e.get("reconciled")] == ["uploaded", "created"]
    assert [e["kind"] for e in events].count("upload_intent") == 2


def test_a_restart_during_a_retry_keeps_what_earlier_attempts_answered(tmp_path, monkeypatch):
    # Attempt 1 answers some lines and leaves the rest to retry (500s); the process dies as attempt
    # 2 is created. After the restart attempt 2 is finished first: the lines attempt 1 answered must
    # still count, or they are paid for again.
    rollouts = make_rollouts(tmp_path / "in", questions=2, per_question=3, seed=13)
    batch_dir = tmp_path / "batches"
    pack(rollouts, batch_dir, model="dep", lines=6)
    monkeypatch.setenv("AZURE_API_KEY", "k")
    creates = []

    def die_on_second(self, *args, **kwargs):
        creates.append(1)
        batch = create(self, *args, **kwargs)
        if len(creates) == 2:
            raise Died()
        return batch
    create = BatchService.create
    with run_emulator(*FAST, "--batch-fault-line-500", "0.4") as url:
        argv = ["--batch-dir", str(batch_dir), "--azure-endpoint", url, "--model", "dep",
                "--check-interval", "0.005", "--max-attempts", "20", "--no-progress"]
        with monkeypatch.context() as patch:
            patch.setattr(BatchService, "create", die_on_second)
            with pytest.raises(Died):
                batch_processor.main(argv)
        assert batch_processor.main(argv) == 0
        stats = get_stats(url)["batch"]
    first = next(e for e in ledger_events(batch_dir) if e["kind"] == "downloaded")
    assert first["counts"].get("ok") and first["counts"].get("retry"), first  # the case this test is about
    assert stats["lines_answered"] == 6 and not stats["answered_twice"], stats
    assert ledger_events(batch_dir)[-1]["ok"] == 6


def test_stalled_batches_are_cancelled_and_only_their_unfinished_lines_resubmitted(tmp_path, monkeypatch):
    rollouts = make_rollouts(tmp_path / "in", questions=3, per_question=1, seed=7)
    batch_dir = tmp_path / "batches"
    pack(rollouts, batch_dir, model="dep", lines=3)
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    with run_emulator(*FAST, "--batch-fault-stall", "1") as url:
        assert batch_processor.main(["--batch-dir", str(batch_dir), "--base-url", f"{url}/v1", "--model", "dep",
                                     "--check-interval", "0.005", "--stale-after", "0.02", "--no-progress"]) == 0
        stats = get_stats(url)["batch"]
    events = ledger_events(batch_dir)
    cancels = [e for e in events if e["kind"] == "cancel"]
    submits = [e for e in events if e["kind"] == "submit"]
    assert cancels and all(c["reason"] == "stalled" for c in cancels)
    assert [s["lines"] for s in submits] == sorted((s["lines"] for s in submits), reverse=True)
    assert submits[-1]["lines"] < 3 and stats["lines_answered"] == 3 and not stats["answered_twice"]
    assert events[-1]["kind"] == "file_done" and events[-1]["ok"] == 3


def test_run_batch_processor_sh_keeps_the_seed_arguments(tmp_path):
    script = str(ROOT / "run_batch_processor.sh")
    env = {k: v for k, v in script_env().items() if k != "AZURE_API_KEY"}
    missing = subprocess.run([script, "s", "0", "1", "x", "http://127.0.0.1:1", "1", "dep"], env=env,
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1 and "AZURE_API_KEY is not set" in missing.stderr
    rollouts = make_rollouts(tmp_path / "in", questions=2, per_question=2, seed=8)
    batch_dir = tmp_path / "batches"
    pack(rollouts, batch_dir, model="dep", lines=2)
    methods = ["nohup"] + (["tmux"] if shutil.which("tmux") else [])
    with run_emulator(*FAST) as url:
        for index, method in enumerate(methods):
            logs = tmp_path / f"logs_{method}"
            run_env = {**env, "AZURE_API_KEY": "sentinel-key-123", "BATCH_DETACH": method, "BATCH_LOG_DIR": str(logs)}
            started = subprocess.run([script, f"rk_test_{os.getpid()}_{method}", str(index + 1), str(index + 1), "x", url,
                                      "0.005", "dep", "--batch-dir", str(batch_dir)],
                                     env=run_env, capture_output=True, text=True, timeout=30)
            assert started.returncode == 0, started.stderr
            assert f"started batch_processor.py with {method}" in started.stdout
            log = next(logs.glob("batch_processor_*.log"))
            deadline = time.monotonic() + 40
            while "exited with status" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            text = log.read_text()
            assert "exited with status 0" in text and "done: 1 files" in text, text
            assert "sentinel-key-123" not in text
    table = run_script("batch_processor.py", "--batch-dir", str(batch_dir), "--status").stdout
    assert sum(row.split()[4] == "done" for row in table.splitlines()[1:]) == len(methods), table
