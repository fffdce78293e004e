"""The shell scripts as the seed's users run them: from their own folder, with SPLIT/MODEL, --help,
and a failure at start reported as one, not as "started"."""

from __future__ import annotations

import subprocess
import time

import pytest

from rollkit.emulator.datasets import write_questions
from rollkit.emulator.testing import run_emulator
from tests.support import ROOT, read_jsonl, script_env
from tests.support.batch import FAST, make_rollouts, pack

pytestmark = pytest.mark.timeout(120)


def sh(script: str, *args: str, cwd, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / script), *args], capture_output=True, text=True, env=env, timeout=60, cwd=cwd)


def wait_for_exit(log, timeout: float = 40) -> str:
    deadline = time.monotonic() + timeout
    while "exited with status" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    return log.read_text()


@pytest.mark.parametrize("script", ["run_batch_processor.sh", "run_rollout.sh"])
def test_help_shows_the_usage_without_asking_for_a_key(tmp_path, script):
    env = {k: v for k, v in script_env().items() if not k.endswith("_KEY")}
    done = sh(script, "--help", cwd=tmp_path, env=env)
    assert done.returncode == 0 and "KEY is not set" not in done.stderr
    assert "./" + script in done.stdout and "SPLIT" in done.stdout


def test_batch_processor_script_works_from_the_callers_folder_with_split_and_model(tmp_path):
    rollouts = make_rollouts(tmp_path / "in", questions=2, per_question=1, seed=31)
    pack(rollouts, tmp_path / "batch_files" / "mysplit", model="dep", lines=1)  # the seed's layout, here
    with run_emulator(*FAST) as url:
        env = script_env(AZURE_API_KEY="k", BATCH_DETACH="nohup", SPLIT="mysplit", MODEL="dep")
        started = sh("run_batch_processor.sh", "sess", "1", "2", "", url, "0.005", cwd=tmp_path, env=env)
        assert started.returncode == 0, started.stderr
        (log,) = (tmp_path / "logs").glob("batch_processor_sess_*.log")  # logs/ of the caller's folder
        text = wait_for_exit(log)
    assert "exited with status 0" in text and "done: 2 files" in text, text
    assert str(log) in started.stdout


def test_batch_processor_script_reports_a_failure_at_start(tmp_path):
    env = script_env(AZURE_API_KEY="k", BATCH_DETACH="nohup", BATCH_START_WAIT="20")
    failed = sh("run_batch_processor.sh", "sess", "1", "", "nosuchsplit", "http://127.0.0.1:9", "1", "dep",
                cwd=tmp_path, env=env)
    assert failed.returncode == 1, failed.stdout
    assert "started" not in failed.stdout and "failed at start" in failed.stderr
    assert "no manifest.json" in failed.stderr


def test_rollout_script_takes_relative_paths_from_the_callers_folder(tmp_path):
    write_questions(tmp_path / "data" / "q.jsonl", 2, shape="question")
    env = script_env(ROLLOUT_DETACH="nohup", ROLLOUT_NAME="t")
    with run_emulator() as url:
        started = sh("run_rollout.sh", "start", "--input", "data/q.jsonl", "--output", "out/r.jsonl", "--base-url",
                     f"{url}/v1", "--model_name", "m", "--num-rollouts", "1", "--num-mc", "1",
                     "--scoring-mode", "vqav2_num_str_only_score", cwd=tmp_path, env=env)
        assert started.returncode == 0, started.stderr
        text = wait_for_exit(tmp_path / "logs" / "t.log")
    assert "exited with status 0" in text, text
    assert len(read_jsonl(tmp_path / "out" / "r.jsonl")) == 2
