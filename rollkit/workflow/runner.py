"""Running a plan: each stage as a subprocess of the same Python, in order, skipping what an
earlier run finished, stopping at the first stage that fails with its exit status.

A stage is done when it exited 0; its command (and for rollout, the size and time of the dataset
file) is then recorded in `pipeline_state/`. A rerun skips a done stage whose record is unchanged,
as long as nothing before it (for that dataset) ran again;
a stage that was cut off runs again and resumes by itself (journal, ledger, result logs), so a
crash anywhere costs at most the requests that were in flight. Children die with the pipeline
(Linux: PR_SET_PDEATHSIG), so a killed pipeline leaves no stage running on its own.

Ctrl-C (or `kill -INT` on the pipeline) reaches the running stage exactly once, through the
pipeline, and the pipeline waits while the stage saves what it finished and says so (run_stage).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from rollkit.batch.verify_requests import (
    DEFAULT_MAX_COMPLETION_TOKENS,
    RequestError,
    RequestOptions,
    build_request,
    request_tokens,
)
from rollkit.content.images import ImageError
from rollkit.content.inputs import FieldMap, iter_inputs
from rollkit.net.pricing import model_price
from rollkit.stages.montecarlo import RolloutParams
from rollkit.store.atomic import write_json
from rollkit.workflow.checks import check_plan
from rollkit.workflow.config import ConfigError, RunConfig
from rollkit.workflow.plan import Stage, build_plan, paths, state_path

OUTAGE = 3


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _command(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", *argv]


def _child_env() -> dict[str, str]:
    """The stages import the same rollkit as the pipeline, wherever it lives and whatever the folder."""
    import rollkit

    home = str(Path(rollkit.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (home, os.environ.get("PYTHONPATH"))))}


def run_stage(stage: Stage) -> int:
    """Run one stage to its end and return its exit status; KeyboardInterrupt once it ended if the
    pipeline was interrupted meanwhile. subprocess.run would SIGKILL the stage a quarter second
    after a Ctrl-C, cutting off its own Ctrl-C handling (its summary, the batches it leaves
    running); and a `kill -INT` on the pipeline alone would never reach the stage. So the stage
    runs in a process group of its own, out of the terminal's reach, and each SIGINT the pipeline
    gets is passed on to it once."""
    process = subprocess.Popen(_command(stage.argv), env=_child_env(), preexec_fn=_die_with_parent,
                               process_group=0)
    interrupted = False
    while True:
        try:
            code = process.wait()
            break
        except KeyboardInterrupt:
            interrupted = True
            process.send_signal(signal.SIGINT)
    if interrupted:
        raise KeyboardInterrupt
    return code


def _done_before(config: RunConfig, stage: Stage) -> bool:
    try:
        return json.loads(state_path(config, stage).read_text()) == stage.fingerprint()
    except (OSError, ValueError):
        return False


def exit_status(code: int) -> int:
    """A stage's exit status as the pipeline's: 2 bad input, 3 outage, 130 interrupted, else 1."""
    return code if code in (2, OUTAGE, 130) else 1


def run_plan(config: RunConfig) -> int:
    stages = build_plan(config)
    check_plan(config, stages)  # before anything is paid for
    (config.root / "pipeline_state").mkdir(parents=True, exist_ok=True)
    write_json(config.root / "pipeline.config.json", {
        "config_file": str(config.path), "config": config.raw,
        "stages": [{"name": s.name, "dataset": s.dataset, "argv": s.argv} for s in stages]})
    reran: set[str | None] = set()
    for stage in stages:
        label = f"[{stage.dataset or 'run'}] {stage.name}"
        upstream_ran = bool(reran) if stage.dataset is None else stage.dataset in reran
        if not upstream_ran and _done_before(config, stage):
            print(f"== {label}: done in an earlier run, skipped", flush=True)
            continue
        print(f"== {label}: {' '.join(stage.argv)}", flush=True)
        code = run_stage(stage)
        if code != 0:
            status = exit_status(code)
            why = "stopped by an outage" if status == OUTAGE else f"failed (exit status {code})"
            print(f"pipeline: {label} {why}; run the same command again to resume", file=sys.stderr)
            return status
        write_json(state_path(config, stage), stage.fingerprint())
        reran.add(stage.dataset)
    print(f"pipeline: every stage done; outputs below {config.root}")
    return 0


# ---------------------------------------------------------------- dry run


def _captured(argv: list[str]) -> str:
    """What a stage's own dry run prints; ConfigError with its complaint when it refuses (a field the
    input lacks, a template the records cannot fill: what the real run would stop on)."""
    done = subprocess.run(_command(argv), capture_output=True, text=True, env=_child_env())
    if done.returncode:
        raise ConfigError(f"{argv[1]} --dry-run: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
    return done.stdout.strip()


FIELD_NAMES = ("question", "answer", "image", "options")


def _flag(argv: list[str], name: str, default: str | None = None) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else default


def _cost(model: str, prompt: int, completion: int) -> str:
    price_in, price_out = model_price(model)
    if price_in is None or price_out is None:
        return "unknown (no list price for this model)"
    return f"${(prompt * price_in + completion * price_out) / 1e6:,.2f} at most, at list price " \
           "(the Batch API bills about half)"


def _verification_bound(stage: Stage, dataset: Path, rollout_argv: list[str]) -> str:
    """Before any rollout exists: one judge request per rollout, each built as pack builds it around
    a solution as long as rollout.py's --max-tokens allows."""
    model = _flag(stage.argv, "--model") or ""
    per_question = int(_flag(rollout_argv, "--num-rollouts", str(RolloutParams.num_rollouts)))
    solution = "step " * int(_flag(rollout_argv, "--max-tokens", str(RolloutParams.max_tokens)))
    completion_each = int(_flag(stage.argv, "--max-completion-tokens", str(DEFAULT_MAX_COMPLETION_TOKENS)))
    options = RequestOptions(model, "/chat/completions", completion_each)
    requests = tokens = 0
    fields = FieldMap.from_flags(*(_flag(rollout_argv, f"--{name}-field") for name in FIELD_NAMES))
    for item in iter_inputs(dataset, fields=fields):
        if item.record is None:
            continue
        try:
            request = build_request({**item.record, "response": solution}, item.source, "bound", options)
        except (RequestError, ImageError):
            continue
        requests += per_question
        tokens += per_question * request_tokens(request)
    completion = requests * completion_each
    return (f"at most {requests:,} requests (one per rollout), prompt tokens {tokens - completion:,} at most "
            f"(solutions of --max-tokens), completion tokens {completion:,} at most, "
            f"cost {_cost(model, tokens - completion, completion)}")


def _verification_estimate(stage: Stage, rollouts: Path, dataset: Path, rollout_argv: list[str]) -> str:
    model = _flag(stage.argv, "--model") or ""
    if not rollouts.exists():
        return _verification_bound(stage, dataset, rollout_argv)
    with tempfile.TemporaryDirectory() as scratch:
        argv = [*stage.argv[:stage.argv.index("--out-dir") + 1], scratch, *stage.argv[stage.argv.index("--out-dir") + 2:]]
        _captured(argv)
        manifest = json.loads((Path(scratch) / "manifest.json").read_text())
    lines = sum(f["lines"] for f in manifest["files"])
    tokens = sum(f["tokens"] for f in manifest["files"])
    completion = lines * manifest["max_completion_tokens"]
    return (f"{lines:,} requests (one per rollout), prompt tokens {tokens - completion:,}, "
            f"completion tokens {completion:,} at most, cost {_cost(model, tokens - completion, completion)}")


def dry_run(config: RunConfig) -> int:
    """Print every stage's command and what it would send; call nothing, write nothing."""
    stages = build_plan(config)
    check_plan(config, stages)
    rollout_argv: list[str] = []
    for stage in stages:
        done = " (done in an earlier run)" if _done_before(config, stage) else ""
        print(f"== [{stage.dataset or 'run'}] {stage.name}{done}: {' '.join(stage.argv)}")
        if stage.name == "rollout":
            rollout_argv = stage.argv
            print("   " + _captured([*stage.argv, "--dry-run"]).replace("\n", "\n   "))
        elif stage.name == "pack":
            dataset = next(d for d in config.datasets if d.folder == stage.dataset)
            estimate = _verification_estimate(stage, paths(config, dataset)["rollouts"], dataset.input, rollout_argv)
            print(f"   batch verification: {estimate}")
        elif stage.name == "batch":
            print("   runs the packed files (requests counted under pack)")
        else:
            print("   local: no requests")
    return 0
