"""Mathematical equivalence by math_verify (``math_equal``), bounded in time and safe from any thread.

Off the main thread, checks go to a pool of worker processes (``_MathWorker``), each killed when it
overruns; the pool and its slot count are module state, shared by every caller.
"""

from __future__ import annotations

import json
import os
import queue
import select
import subprocess
import sys
import threading
from pathlib import Path

# Per math_verify step (two parses and a comparison), and the hard limit for a whole check.
_MATH_TIMEOUT_S = 3
_MATH_DEADLINE_S = 10.0
# Parsed answers are short; long inputs are where sympy's worst cases live.
_MATH_MAX_CHARS = 1000


def math_equal(pred: str, gt: str) -> bool:
    """math_verify equivalence within a time limit, safe to call from any thread."""
    if max(len(pred), len(gt)) > _MATH_MAX_CHARS:
        return False
    if threading.current_thread() is threading.main_thread():
        return _math_verify(pred, gt, _MATH_TIMEOUT_S)
    # math_verify times out with signal.alarm, which only a main thread may set: from any other
    # thread, with a timeout it raises (so every answer would score 0) and without one sympy can
    # hang the thread (holding the GIL, slowing every other). So off the main thread the check runs
    # in a worker process, whose main thread has the alarm, and which is killed if it overruns.
    with _worker_slots:
        try:
            worker = _idle_workers.get_nowait()
        except queue.Empty:
            worker = _MathWorker()
        verdict = worker.check(pred, gt)
        if verdict is None:
            worker.kill()
            return False
        _idle_workers.put(worker)
        return verdict


def _math_verify(pred: str, gt: str, timeout: int | None) -> bool:
    from math_verify import parse, verify  # sympy is slow to import; only math modes need it

    def as_latex(text: str) -> str:
        return text if "$" in text or "\\boxed" in text else f"${text}$"

    try:
        gold = parse(as_latex(gt), parsing_timeout=timeout)
        target = parse(as_latex(pred), parsing_timeout=timeout)
        return bool(gold and target and verify(gold, target, timeout_seconds=timeout))
    except Exception:  # noqa: BLE001 - sympy on model text can fail any way; that is "not equal"
        return False


class _MathWorker:
    """A child Python process answering math_verify checks, one JSON line each way.

    A plain subprocess rather than multiprocessing: spawn and forkserver re-import the caller's
    ``__main__`` (a script without a main guard would run again), and fork copies locks that other
    threads may hold.
    """

    def __init__(self) -> None:
        paths = [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from rollkit.answers.mathcheck import _serve_math; _serve_math()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))},
            start_new_session=True,  # Ctrl-C is the parent's to handle; the child ends at stdin EOF
        )
        if self.check("1", "1", deadline=60.0) is None:  # first check pays sympy's import
            self.kill()
            raise RuntimeError("the math_verify worker process did not start")

    def check(self, pred: str, gt: str, deadline: float | None = None) -> bool | None:
        """The verdict, or None when the worker overran the deadline or died."""
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(json.dumps([pred, gt]) + "\n")
            stdin.flush()
            # One request is outstanding at a time, so nothing sits in stdout's buffer unseen.
            ready, _, _ = select.select([stdout], [], [], deadline or _MATH_DEADLINE_S)
            line = stdout.readline() if ready else ""
        except (OSError, ValueError):
            return None
        return bool(json.loads(line)) if line else None

    def kill(self) -> None:
        self._process.kill()
        self._process.wait()


def _serve_math() -> None:
    for line in sys.stdin:
        pred, gt = json.loads(line)
        print(json.dumps(_math_verify(pred, gt, _MATH_TIMEOUT_S)), flush=True)


_idle_workers: queue.SimpleQueue[_MathWorker] = queue.SimpleQueue()
_worker_slots = threading.BoundedSemaphore(os.cpu_count() or 4)
