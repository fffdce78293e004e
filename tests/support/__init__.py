"""Helpers every test part shares: the repo's paths, running the scripts as a user does, reading outputs,
and crashing a run on purpose."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rollkit.emulator.testing import get_stats, reset_stats

ROOT = Path(__file__).resolve().parents[2]
# Beside the clone in CI; a worktree elsewhere names the folder in ROLLKIT_SEED_FIXTURES.
FIXTURES = Path(os.environ.get("ROLLKIT_SEED_FIXTURES") or ROOT.parent / "shared" / "fixtures" / "vqav2_seed")


def script_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update({"PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "test-key", **extra})
    return env


def run_script(script: str, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True,
                          env=env or script_env(), timeout=timeout, cwd=ROOT)


# What a parent may leave a child's SIGINT as: ignored (a shell without job control starting
# `nohup cmd &` or `cmd &`, as CI scripts do) or blocked (the mask survives exec).
PARENT_SIGINT = {"ignored": "signal.signal(signal.SIGINT, signal.SIG_IGN)",
                 "blocked": "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})"}


def start_script(script: str, *args: str, env: dict | None = None, parent_sigint: str | None = None) -> subprocess.Popen:
    """Start `script`; with `parent_sigint`, through a parent that leaves SIGINT that way (then execs
    the script in its place, so the pid is the script's), whatever this test process inherited."""
    command = [sys.executable, str(ROOT / script), *args]
    if parent_sigint:
        launch = f"import os, signal, sys; {PARENT_SIGINT[parent_sigint]}; os.execv(sys.argv[1], sys.argv[1:])"
        command = [sys.executable, "-I", "-c", launch, *command]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or script_env(), cwd=ROOT)


def read_jsonl(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def count_lines(path: Path) -> int:
    """Whole lines only: a writer may be half way through the last one."""
    return Path(path).read_bytes().count(b"\n") if Path(path).exists() else 0


def kill_after_new_replies(process: subprocess.Popen, journal: str | Path, count: int, timeout: float = 60) -> None:
    """SIGKILL once `count` more replies are journaled: a moment in the middle of the run."""
    start = count_lines(journal)
    deadline = time.monotonic() + timeout
    while count_lines(journal) < start + count and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


@dataclass
class CrashRun:
    written_before_finish: int  # records on disk after the last kill
    finished: subprocess.CompletedProcess
    stats: dict  # the emulator's counters for the crashed runs together
    clean_stats: dict  # the same for the uninterrupted run


def crash_and_resume(url: str, script: str, clean_args: list[str], crashed_args: list[str], journal: str,
                     *, kills: int, seed: int, replies: tuple[int, int]) -> CrashRun:
    """Run `script` once uninterrupted, then again killed `kills` times at random moments (after a
    random number of journaled replies in `replies`) and finished by a plain restart."""
    rng = random.Random(seed)
    assert run_script(script, *clean_args).returncode == 0
    clean_stats = get_stats(url, with_keys=False)
    reset_stats(url)
    for _ in range(kills):
        kill_after_new_replies(start_script(script, *crashed_args), journal, rng.randint(*replies))
    output = crashed_args[crashed_args.index("--output_file" if "--output_file" in crashed_args else "--output") + 1]
    written = len(read_jsonl(output))
    finished = run_script(script, *crashed_args)
    return CrashRun(written, finished, get_stats(url), clean_stats)
