"""Debian's chromium, headless, for the browser tests (tests/browser/ensure_chromium.sh installs it).

The tests skip when it is absent, unless ROLLKIT_BROWSER_TESTS=1 (CI) makes its absence a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# what this machine's chromium needs: no sandbox as root, and no background connections, which
# the closed network refuses
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    """The browser's path; skips the test (fails it under ROLLKIT_BROWSER_TESTS=1) when absent."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.environ.get("ROLLKIT_BROWSER_TESTS") == "1":
        pytest.fail("ROLLKIT_BROWSER_TESTS=1 but chromium is not installed (tests/browser/ensure_chromium.sh)")
    pytest.skip("chromium is not installed (tests/browser/ensure_chromium.sh installs it)")


def run(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=90, check=True)


def screenshot(page: Path, shot: Path, profile: Path, size: str = "1000,2400") -> Path:
    run(page, profile, f"--window-size={size}", f"--screenshot={shot}")
    return shot


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM after the page loaded (scripts ran, images decoded)."""
    return run(page, profile, "--virtual-time-budget=10000", "--dump-dom").stdout
