"""The real-server tier: one real `vllm serve` per session, stopped at the end.

ROLLKIT_VLLM_URL=http://127.0.0.1:PORT uses a server already running instead (while writing tests).
ROLLKIT_REAL_TIER=1: the tier must run (an env that is not built fails it); 0: skipped; unset: runs
when the env is built (`python -m tests.real.build_env`), skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.real import batch_job, env
from tests.real.server import BatchRun, VllmServer, running_server, start_vllm

TIER_FLAG = "ROLLKIT_REAL_TIER"
BATCH_DIR = "ROLLKIT_VLLM_BATCH_DIR"
BATCH_TEST = "test_pack_for_vllm_then_vllm_run_batch_then_map"


def pytest_configure(config):
    config.addinivalue_line("markers", "real_vllm: needs the real vLLM server of tests/real (see its README section)")


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.real_vllm)


def tier_must_run() -> bool:
    return os.environ.get(TIER_FLAG) == "1"


def skip_reason() -> str | None:
    """Why the tier is skipped here, or None to run it."""
    if os.environ.get(TIER_FLAG) == "0":
        return f"{TIER_FLAG}=0"
    if not (env.venv_built() and env.model_built()):
        missing = f"the vLLM env is not built in {env.cache_root()} (python -m tests.real.build_env)"
        if tier_must_run():
            pytest.fail(f"{TIER_FLAG}=1 but {missing}", pytrace=False)
        return missing
    return None


@pytest.fixture(scope="session")
def vllm(tmp_path_factory) -> VllmServer:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("vllm")
    if os.environ.get("ROLLKIT_VLLM_URL"):  # a server left running while working on the tests
        server = running_server(os.environ["ROLLKIT_VLLM_URL"], workdir)
        if server is None:
            pytest.fail(f"ROLLKIT_VLLM_URL={os.environ['ROLLKIT_VLLM_URL']} does not serve {env.MODEL_NAME}")
        yield server
        return
    started = time.monotonic()
    server = start_vllm(workdir)
    print(f"\nvllm serve ready on {server.url} in {time.monotonic() - started:.0f} s")
    yield server
    server.stop()


@dataclass
class PackedBatch:
    folder: Path
    results: Path
    run: BatchRun | batch_job.FinishedRun


@pytest.fixture(scope="session", autouse=True)
def vllm_batch(request, tmp_path_factory) -> PackedBatch | None:
    """The batch job of tests/real/batch_job.py: the one run_tests.sh started while tier 1 ran
    (ROLLKIT_VLLM_BATCH_DIR), or one started here at the start of the session, so its engine loads
    while the server's does and runs beside the other tests. BATCH_TEST waits for it. Nothing when
    that test is not selected."""
    if not any(item.name == BATCH_TEST for item in request.session.items) or skip_reason():
        yield None
        return
    if os.environ.get(BATCH_DIR):
        folder = Path(os.environ[BATCH_DIR])
        yield PackedBatch(folder, batch_job.results_path(folder), batch_job.FinishedRun(folder))
        return
    folder = tmp_path_factory.mktemp("batch")
    run = batch_job.start(folder)
    yield PackedBatch(folder, batch_job.results_path(folder), run)
    run.stop()


@pytest.fixture
def packed_batch(vllm_batch) -> PackedBatch:
    """The session's batch run, or the tier's skip."""
    if vllm_batch is None:
        pytest.skip(skip_reason() or "vllm run-batch was not started")
    return vllm_batch
