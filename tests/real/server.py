"""Start and stop a real `vllm serve` of the converted SmolLM2 on 127.0.0.1 (tests and bench share it)."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.real import env

SERVED_NAME = "smollm2"
MAX_MODEL_LEN = 4096
START_TIMEOUT = 300.0
PR_SET_PDEATHSIG = 1


def short_tmpdir() -> Path:
    """vLLM binds ZeroMQ sockets under TMPDIR, whose paths must stay under 107 bytes: pytest's own
    temporary folders are too deep, so each engine gets a short one of its own."""
    return Path(tempfile.mkdtemp(prefix="rk-vllm-", dir="/tmp"))


def server_env(tmpdir: Path) -> dict[str, str]:
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1", "VLLM_TARGET_DEVICE": "cpu", "TMPDIR": str(tmpdir), "NO_PROXY": "127.0.0.1,localhost"}


def _own_session_dying_with_parent() -> None:
    """In the child before exec: its own process group (stop() signals the whole group, engine
    core included), and SIGTERM when the test process dies, so a killed run leaves no server."""
    os.setsid()
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class VllmServer:
    process: subprocess.Popen | None  # None: a server someone else started (ROLLKIT_VLLM_URL)
    port: int
    workdir: Path
    log_path: Path
    tmpdir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the server's process group (vLLM forks an engine core), then SIGKILL what is left."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # an engine core that outlived its parent
        except ProcessLookupError:
            pass
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def models_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=5) as reply:
            return SERVED_NAME in {m["id"] for m in json.load(reply)["data"]}
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return False


def running_server(url: str, workdir: Path) -> VllmServer | None:
    """A server already serving the model at `url` (to rerun tests or the bench without a restart)."""
    if not models_ready(url.rstrip("/")):
        return None
    return VllmServer(None, int(url.rstrip("/").rsplit(":", 1)[1]), workdir, workdir / "vllm-serve.log")


def start_vllm(workdir: Path | None = None, timeout: float = START_TIMEOUT) -> VllmServer:
    """Start `vllm serve` on a free port and wait until /v1/models lists the model."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="rollkit-vllm-"))
    workdir.mkdir(parents=True, exist_ok=True)
    tmpdir = short_tmpdir()
    port = free_port()
    log_path = workdir / "vllm-serve.log"
    cmd = [str(env.vllm_executable()), "serve", str(env.model_dir()), "--served-model-name", SERVED_NAME,
           "--host", "127.0.0.1", "--port", str(port), *engine_flags()]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=server_env(tmpdir),
                                   cwd=workdir, preexec_fn=_own_session_dying_with_parent)
    server = VllmServer(process, port, workdir, log_path, tmpdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vllm serve exited {process.returncode} at start:\n{server.log_tail()}")
        if models_ready(server.url):
            return server
        time.sleep(1)
    server.stop()
    raise RuntimeError(f"vllm serve not ready after {timeout:.0f} s:\n{server.log_tail()}")


def engine_flags(max_model_len: int = MAX_MODEL_LEN) -> list[str]:
    """The doc's recipe (shared/design/real_servers.md): float32 keeps vLLM's seed rule byte for byte,
    --enforce-eager skips a 170 s torch.compile that gains nothing here, and prompt token details
    make usage.prompt_tokens_details.cached_tokens real."""
    return ["--dtype", "float32", "--max-model-len", str(max_model_len), "--enforce-eager",
            "--enable-prompt-tokens-details"]


@dataclass
class BatchRun:
    """A `vllm run-batch` started in the background: its engine loads while other tests run."""

    process: subprocess.Popen
    log_path: Path
    tmpdir: Path

    def wait(self, timeout: float = 300) -> tuple[int, str]:
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            self.stop()
        return code, self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def start_run_batch(input_path: Path, output_path: Path, workdir: Path,
                    max_model_len: int = MAX_MODEL_LEN) -> BatchRun:
    """`vllm run-batch` over a JSONL file with its own engine and the same flags as the server."""
    workdir.mkdir(parents=True, exist_ok=True)
    tmpdir = short_tmpdir()
    cmd = [str(env.vllm_executable()), "run-batch", "-i", str(input_path), "-o", str(output_path),
           "--model", str(env.model_dir()), "--served-model-name", SERVED_NAME, *engine_flags(max_model_len)]
    log_path = workdir / "vllm-run-batch.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=server_env(tmpdir), cwd=workdir,
                                   preexec_fn=_own_session_dying_with_parent)
    return BatchRun(process, log_path, tmpdir)


def serve_until_stopped(url_file: Path) -> int:
    """Start the server, write its URL to `url_file` once it answers, and keep it until SIGTERM or
    SIGINT (run_tests.sh starts it while tier 1 runs and passes the URL on as ROLLKIT_VLLM_URL)."""
    try:
        server = start_vllm()  # a SIGTERM meanwhile ends this process, and the server with it (PDEATHSIG)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    try:
        partial = url_file.with_name(url_file.name + ".part")
        partial.write_text(server.url)
        partial.replace(url_file)  # whole or absent: the reader never sees half a URL
        print(f"vllm serve ready on {server.url}; log {server.log_path}", flush=True)
        while not stopping and server.process.poll() is None:
            time.sleep(0.5)
        return 0 if stopping else 1
    finally:
        server.stop()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=serve_until_stopped.__doc__)
    parser.add_argument("--url-file", type=Path, required=True)
    raise SystemExit(serve_until_stopped(parser.parse_args().url_file))
