"""Shared fixtures: run the scripts as a user would (subprocesses, real HTTP to the emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def reject_args():
    """The common reject.py flags for a run against an emulator at `url`."""
    def build(url: str, input_path: Path, output: Path, *extra: str) -> list[str]:
        return ["--input_file", str(input_path), "--output_file", str(output), "--generator_model", "gen",
                "--scorer_model", "judge", "--base-url", f"{url}/v1", "--answers_per_question", "3",
                "--concurrency", "8", "--request-timeout", "3", *extra]
    return build
