"""The real tier's `vllm run-batch` job: 4 fixture rollouts packed with --max-model-len and 2 without,
run by one engine. Its engine load and run take one to two minutes of CPU, so it starts before the
tests that read it: with the session (conftest's vllm_batch), or, from run_tests.sh, while tier 1 runs:

    python -m tests.real.batch_job --folder F   # packs, runs, then writes F/exit_code

and the tier reads F when ROLLKIT_VLLM_BATCH_DIR=F (waiting for exit_code if it is still running).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.real.server import BatchRun, start_run_batch

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_ROLLOUTS = ROOT.parent / "shared" / "fixtures" / "vqav2_seed" / "rollouts_gpt-4.1.jsonl"
# The batch engine's context: short, so that the small judge's rambling replies stay quick here.
BATCH_CONTEXT = 1536
EXIT_CODE = "exit_code"
PID = "pid"
LOG = "engine/vllm-run-batch.log"


@dataclass
class FinishedRun:
    """A run another process made (run_tests.sh): its exit code is written once it ends."""

    folder: Path

    def wait(self, timeout: float = 600) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        marker = self.folder / EXIT_CODE
        while not marker.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{marker} not written after {timeout:.0f} s: is tests.real.batch_job running?")
            if not self._running() and not marker.exists():
                return 1, f"tests.real.batch_job ended without writing {marker}\n{self._log()}"
            time.sleep(1)
        return int(marker.read_text()), self._log()

    def _running(self) -> bool:
        """True until the job is known to have ended (before it wrote its pid, it may not have started)."""
        try:
            os.kill(int((self.folder / PID).read_text()), 0)
        except FileNotFoundError:
            return True
        except (ProcessLookupError, ValueError):
            return False
        return True

    def _log(self) -> str:
        """The ends of the job's own log (run_tests.sh writes job.log) and of its engine's."""
        logs = [self.folder / "job.log", self.folder / LOG]
        return "\n".join(f"{p}:\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())


def text_rollouts(path: Path, rows: list[dict]) -> Path:
    """Fixture rollouts without their images: the served model reads text only."""
    drop = ("image", "images", "image_path")
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in drop}) + "\n" for r in rows))
    return path


def pack(rollouts: Path, out_dir: Path, *extra: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "merge_and_map_batch.py"), "pack", "--rollouts", str(rollouts),
                    "--out-dir", str(out_dir), "--model", "smollm2", "--target", "vllm", *extra],
                   check=True, capture_output=True, cwd=ROOT, timeout=120)


def start(folder: Path) -> BatchRun:
    """Pack both folders into `folder` and start one engine on their lines (results.jsonl)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in FIXTURE_ROLLOUTS.read_text().splitlines()]
    pack(text_rollouts(folder / "capped.jsonl", rows[:4]), folder / "capped", "--max-model-len", str(BATCH_CONTEXT))
    uncapped = [{**r, "rollout_id": f"uncapped-{i}"} for i, r in enumerate(rows[4:6])]
    pack(text_rollouts(folder / "uncapped.jsonl", uncapped), folder / "uncapped")
    both = folder / "both.jsonl"  # one engine start for both folders
    both.write_bytes((folder / "capped" / "batch_0001.jsonl").read_bytes()
                     + (folder / "uncapped" / "batch_0001.jsonl").read_bytes())
    return start_run_batch(both, results_path(folder), folder / "engine", max_model_len=BATCH_CONTEXT)


def results_path(folder: Path) -> Path:
    return folder / "results.jsonl"


def run_to_end(folder: Path) -> int:
    """Pack, run and wait; exit_code is written however it ends (a failed pack writes 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PID).write_text(str(os.getpid()))
    code = 1
    try:
        code, _ = start(folder).wait(timeout=900)
    finally:
        partial = folder / (EXIT_CODE + ".part")
        partial.write_text(str(code))
        partial.replace(folder / EXIT_CODE)
    return code


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=run_to_end.__doc__)
    parser.add_argument("--folder", type=Path, required=True)
    raise SystemExit(run_to_end(parser.parse_args().folder))
