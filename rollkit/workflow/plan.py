"""Stage commands for each dataset, in the seed's folder layout below the run's root:

    rollout_output_data_files/<folder>/rollouts.jsonl   rollout.py
    batch_files/<folder>/                               pack, batch_processor.py (manifest, ledger, results)
    verified_output_data_files/<folder>.jsonl           map
    training_data_files/<folder>/<export output>        export_dataset.py
    report/index.html                                   report.py over the root
    pipeline_state/<folder>.<stage>.json                what each finished stage ran (skip on rerun)
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rollkit.store.atomic import write_json
from rollkit.workflow.config import RATE_LIMIT_KEYS, ConfigError, Dataset, RunConfig

ROOT = Path(__file__).resolve().parents[2]  # the scripts' folder
SCRIPTS = {"rollout": "rollout.py", "pack": "merge_and_map_batch.py", "batch": "batch_processor.py",
           "map": "merge_and_map_batch.py", "export": "export_dataset.py", "report": "report.py"}
SUBCOMMAND = {"pack": ["pack"], "map": ["map"]}
# flags the pipeline sets itself: they tie one stage's output to the next one's input
OWNED = {"rollout": {"input", "input_file", "output", "output_file"}, "pack": {"rollouts", "out-dir", "split"},
         "batch": {"batch-dir", "split"}, "map": {"rollouts", "results", "output", "split"},
         "export": {"rollouts", "output"}, "report": {"out"}}


@dataclass(frozen=True)
class Stage:
    name: str  # rollout, pack, batch, map, export:<file>, report
    dataset: str | None  # the dataset's folder name; None for the report
    argv: list[str]  # after `python`
    output: Path
    source: Path | None = None  # a file from outside the run: a change to it makes the stage run again

    def fingerprint(self) -> dict:
        """What a finished stage records: its command, and the size and time of its outside input."""
        if self.source is None or not self.source.exists():
            return {"argv": self.argv}
        info = self.source.stat()
        return {"argv": self.argv, "source": [str(self.source), info.st_size, info.st_mtime_ns]}


_FLAGS: dict[str, frozenset[str]] = {}


def _script_key(stage: str) -> list:
    info = (ROOT / SCRIPTS[stage]).stat()
    return [info.st_mtime_ns, info.st_size]


def load_flags(cache: Path | None = None) -> None:
    """Every `--flag` each stage's --help lists (the script's own parser is the one truth). The
    scripts are asked all at once (each takes a second to import), and the answers are kept in
    `cache` for as long as the script files are unchanged."""
    saved = {}
    if cache is not None and cache.exists():
        saved = json.loads(cache.read_text())
    for stage, entry in saved.items():
        if stage in SCRIPTS and entry.get("key") == _script_key(stage):
            _FLAGS.setdefault(stage, frozenset(entry["flags"]))
    running = {stage: subprocess.Popen([sys.executable, str(ROOT / SCRIPTS[stage]), *SUBCOMMAND.get(stage, []),
                                        "--help"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                       cwd=ROOT) for stage in SCRIPTS if stage not in _FLAGS}
    for stage, process in running.items():
        out, _ = process.communicate(timeout=120)
        _FLAGS[stage] = frozenset(word.rstrip(",=") for word in out.split() if word.startswith("--"))
    if cache is not None and running:
        write_json(cache, {stage: {"key": _script_key(stage), "flags": sorted(flags)} for stage, flags in _FLAGS.items()})


def script_flags(stage: str) -> frozenset[str]:
    if stage not in _FLAGS:
        load_flags()
    return _FLAGS[stage]


def flag_args(stage: str, flags: dict, where: str) -> list[str]:
    """`{"num-rollouts": 4, "no-n": true}` -> ["--num-rollouts", "4", "--no-n"], checked against --help."""
    known = script_flags(stage)
    argv = []
    for key, value in flags.items():
        if key in OWNED[stage] or key.replace("_", "-") in OWNED[stage]:
            raise ConfigError(f"{where}: {key} is set by the pipeline (it links the stages)")
        flag = next((f for f in (f"--{key}", f"--{key.replace('_', '-')}", f"--{key.replace('-', '_')}")
                     if f in known), None)
        if flag is None:
            script = " ".join([SCRIPTS[stage], *SUBCOMMAND.get(stage, [])])
            raise ConfigError(f"{where}: {script} has no flag --{key}")
        if value is True:
            argv.append(flag)
        elif value is False:
            continue
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def _flags(config: RunConfig, dataset: Dataset, stage: str) -> dict:
    flags = dict(config.stages.get(stage, {}))
    if stage in ("rollout", "batch"):
        shared = {k: v for k, v in config.endpoint.items() if stage == "rollout" or k not in RATE_LIMIT_KEYS}
        flags = {**shared, **flags}
    return {**flags, **dataset.overrides.get(stage, {})}


def paths(config: RunConfig, dataset: Dataset) -> dict[str, Path]:
    root, folder = config.root, dataset.folder
    return {"rollouts": root / "rollout_output_data_files" / folder / "rollouts.jsonl",
            "batch": root / "batch_files" / folder, "verified": root / "verified_output_data_files" / f"{folder}.jsonl",
            "training": root / "training_data_files" / folder}


def dataset_stages(config: RunConfig, dataset: Dataset) -> list[Stage]:
    p = paths(config, dataset)
    where = lambda stage: f"{config.path} [{stage}] (dataset {dataset.folder})"  # noqa: E731
    rollout = {"dataset-name": dataset.name, **_flags(config, dataset, "rollout")}
    pack = {"prefix": dataset.folder, **_flags(config, dataset, "pack")}
    batch = {"model": pack["model"], **_flags(config, dataset, "batch")}
    stages = [
        Stage("rollout", dataset.folder, ["rollout.py", "--input", str(dataset.input), "--output", str(p["rollouts"]),
                                          *flag_args("rollout", rollout, where("rollout"))], p["rollouts"],
              dataset.input),
        Stage("pack", dataset.folder, ["merge_and_map_batch.py", "pack", "--rollouts", str(p["rollouts"]),
                                       "--out-dir", str(p["batch"]), *flag_args("pack", pack, where("pack"))],
              p["batch"] / "manifest.json"),
        Stage("batch", dataset.folder, ["batch_processor.py", "--batch-dir", str(p["batch"]),
                                        *flag_args("batch", batch, where("batch"))], p["batch"] / "results"),
        Stage("map", dataset.folder, ["merge_and_map_batch.py", "map", "--rollouts", str(p["rollouts"]), "--results",
                                      str(p["batch"] / "results"), "--output", str(p["verified"]),
                                      *flag_args("map", _flags(config, dataset, "map"), where("map"))], p["verified"]),
    ]
    for export in config.exports:
        flags = {"dataset-name": dataset.name, **{k: v for k, v in export.items() if k != "output"},
                 **dataset.overrides.get("export", {})}
        target = p["training"] / export["output"]
        stages.append(Stage(f"export:{export['output']}", dataset.folder,
                            ["export_dataset.py", "--rollouts", str(p["verified"]), "--output", str(target),
                             *flag_args("export", flags, where("export"))], target))
    return stages


def build_plan(config: RunConfig, cache_flags: bool = True) -> list[Stage]:
    load_flags(config.root / "pipeline_state" / "flags.json" if cache_flags else None)
    stages = [stage for dataset in config.datasets for stage in dataset_stages(config, dataset)]
    if config.report:
        flags = flag_args("report", config.stages["report"], f"{config.path} [report]")
        out = config.root / "report"
        stages.append(Stage("report", None, ["report.py", str(config.root), "--out", str(out), *flags],
                            out / "index.html"))
    return stages


def state_path(config: RunConfig, stage: Stage) -> Path:
    name = stage.name.replace(":", "_").replace("/", "_")
    return config.root / "pipeline_state" / f"{stage.dataset or '_run'}.{name}.json"
