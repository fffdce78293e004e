"""Shared fixtures: run the scripts as a user would (subprocesses, real HTTP to the emulator)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "vqav2_seed"


def script_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update({"PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "test-key", **extra})
    return env


def run_script(script: str, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True,
                          env=env or script_env(), timeout=timeout, cwd=ROOT)


def start_script(script: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or script_env(), cwd=ROOT)


def read_jsonl(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def reject_args():
    """The common reject.py flags for a run against an emulator at `url`."""
    def build(url: str, input_path: Path, output: Path, *extra: str) -> list[str]:
        return ["--input_file", str(input_path), "--output_file", str(output), "--generator_model", "gen",
                "--scorer_model", "judge", "--base-url", f"{url}/v1", "--answers_per_question", "3",
                "--concurrency", "8", "--request-timeout", "3", *extra]
    return build
