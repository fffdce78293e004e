"""Everything a run would trip on, found before it pays: each stage's whole command parsed by the
verb's own parser (formats, answer formats, label policies, numbers), and the datasets' input files
present. `pipeline --dry-run` and a real run both start here."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from rollkit.workflow.config import ConfigError, RunConfig
from rollkit.workflow.plan import Stage


def check_stage(stage: Stage) -> None:
    """ConfigError with the verb's own complaint when its parser refuses the stage's command."""
    from rollkit.cli import verb_module  # the verbs' parsers, imported once a plan is checked

    verb, flags = stage.argv[1], stage.argv[2:]
    parser = verb_module(verb).build_parser()
    refused = io.StringIO()
    try:
        with contextlib.redirect_stderr(refused):
            parser.parse_args(flags)
    except SystemExit as exc:
        if exc.code:
            complaint = refused.getvalue().strip().splitlines()[-1:] or ["its flags are refused"]
            raise ConfigError(f"[{stage.dataset or 'run'}] {stage.name}: {complaint[0]}") from None


def check_plan(config: RunConfig, stages: list[Stage]) -> None:
    """Every dataset's input exists and every stage's command parses; raises ConfigError otherwise."""
    for dataset in config.datasets:
        if not Path(dataset.input).exists():
            raise ConfigError(f"{config.path}: [[dataset]] {dataset.name}: input {dataset.input} does not exist")
    for stage in stages:
        check_stage(stage)
