"""Start emulator subprocesses from tests and benchmarks, and read their counters.

    with run_emulator("--rpm", "60", "--window-seconds", "1") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x")
        ...
        assert get_stats(url)["duplicates"] == 0

`run_emulators(["--seed", "1"], ["--fault-500", "1"])` starts several at once (start-up is mostly
imports, about a second, so starting them together saves time).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import rollkit

LISTENING_PREFIX = "rollkit emulator listening on "
STARTUP_TIMEOUT_SECONDS = 120.0  # a CPU second of imports each; 9 at once on a busy 2-core machine took 39 s
STOP_TIMEOUT_SECONDS = 5.0

# Talk to 127.0.0.1 directly even when the environment sets an HTTP proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@contextmanager
def run_emulator(*args: str, startup_timeout: float = STARTUP_TIMEOUT_SECONDS) -> Iterator[str]:
    """Run `python -m rollkit.emulator --port 0 *args`; yield its base URL (`http://127.0.0.1:PORT`)."""
    with run_emulators(list(args), startup_timeout=startup_timeout) as urls:
        yield urls[0]


@contextmanager
def run_emulators(*arg_lists: Sequence[str], startup_timeout: float = STARTUP_TIMEOUT_SECONDS) -> Iterator[list[str]]:
    """Start one emulator per argument list, all at once; yield their base URLs in the same order."""
    with ExitStack() as stack:
        started = [stack.enter_context(_process(args)) for args in arg_lists]
        try:
            deadline = time.monotonic() + startup_timeout
            yield [_wait_for_url(proc, lines, stderr, deadline) for proc, lines, stderr in started]
        finally:
            for proc, _, _ in started:  # signal all first, so they shut down in parallel
                if proc.poll() is None:
                    proc.terminate()


@contextmanager
def _process(args: Sequence[str]) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str | None], IO[str]]]:
    env = dict(os.environ)
    # The child must import this same rollkit whatever the caller's working directory is.
    repo_root = str(Path(rollkit.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "rollkit.emulator", "--port", "0", *args],
                                stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_drain, args=(proc, lines), daemon=True).start()
        try:
            yield proc, lines, stderr
        finally:
            _stop(proc)


def _drain(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    # Keep reading so the child can never block on a full stdout pipe.
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)
    lines.put(None)


def _wait_for_url(proc: subprocess.Popen[str], lines: queue.Queue[str | None], stderr: IO[str],
                  deadline: float) -> str:
    try:
        line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        line = None
    if line is None or not line.startswith(LISTENING_PREFIX):
        _stop(proc)
        stderr.seek(0)
        raise RuntimeError(f"emulator did not start (exit code {proc.returncode}): {line!r}\n{stderr.read()}")
    return line[len(LISTENING_PREFIX):].strip()


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get_stats(base_url: str, with_keys: bool = True) -> dict[str, Any]:
    """The emulator's counters (`GET /_emulator/stats`)."""
    url = f"{base_url}/_emulator/stats" + ("" if with_keys else "?keys=0")
    with _OPENER.open(url, timeout=10) as response:
        return json.loads(response.read())


def go_down(base_url: str, seconds: float, mode: str = "cut") -> None:
    """Cut every API connection from now on, for `seconds` (`POST /_emulator/down`); `mode="hang"`
    takes requests and answers none until then, as a frozen server process does. A call replaces
    the outage in course: `seconds=0` ends it now."""
    request = urllib.request.Request(f"{base_url}/_emulator/down?seconds={seconds}&mode={mode}", data=b"",
                                     method="POST")
    with _OPENER.open(request, timeout=10) as response:
        response.read()


def reset_stats(base_url: str) -> None:
    """Zero the counters and refill the rate-limit budgets (`POST /_emulator/reset`)."""
    request = urllib.request.Request(f"{base_url}/_emulator/reset", data=b"", method="POST")
    with _OPENER.open(request, timeout=10) as response:
        response.read()
