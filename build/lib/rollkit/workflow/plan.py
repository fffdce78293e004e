"""Stage commands for each dataset (`python -m rollkit VERB ...`), in the seed's folder layout below the
run's root:

    rollout_output_data_files/<folder>/rollouts.jsonl   rollkit rollout
    batch_files/<folder>/                               rollkit pack, rollkit batch (manifest, ledger, results)
    verified_output_data_files/<folder>.jsonl           rollkit map
    training_data_files/<folder>/<export output>        rollkit export
    report/index.html                                   rollkit report over the root
    pipeline_state/<folder>.<stage>.json                what each finished stage ran (skip on rerun)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rollkit.workflow.config import RATE_LIMIT_KEYS, ConfigError, Dataset, RunConfig

# stage -> the seed's script, as errors name it (a stage runs as `python -m rollkit STAGE`)
SCRIPTS = {"rollout": "rollout.py", "pack": "merge_and_map_batch.py pack", "batch": "batch_processor.py",
           "map": "merge_and_map_batch.py map", "export": "export_dataset.py", "report": "report.py"}
# flags the pipeline sets itself: they tie one stage's output to the next one's input
OWNED = {"rollout": {"input", "input_file", "output", "output_file"}, "pack": {"rollouts", "out-dir", "split"},
         "batch": {"batch-dir", "split"}, "map": {"rollouts", "results", "output", "split"},
         "export": {"rollouts", "output"}, "report": {"out"}}


@dataclass(frozen=True)
class Stage:
    name: str  # rollout, pack, batch, map, export:<file>, report
    dataset: str | None  # the dataset's folder name; None for the report
    argv: list[str]  # after `python -m`: ["rollkit", VERB, flags...]
    output: Path
    source: Path | None = None  # a file from outside the run: a change to it makes the stage run again

    def fingerprint(self) -> dict:
        """What a finished stage records: its command, and the size and time of its outside input."""
        if self.source is None or not self.source.exists():
            return {"argv": self.argv}
        info = self.source.stat()
        return {"argv": self.argv, "source": [str(self.source), info.st_size, info.st_mtime_ns]}


def flag_args(stage: str, flags: dict, where: str) -> list[str]:
    """`{"num-rollouts": 4, "no-n": true}` -> ["--num-rollouts", "4", "--no-n"], checked against the verb's parser."""
    from rollkit.cli import UnknownFlag, flag_argv  # the verbs' parsers, imported once a plan needs them

    for key in flags:
        if key in OWNED[stage] or key.replace("_", "-") in OWNED[stage]:
            raise ConfigError(f"{where}: {key} is set by the pipeline (it links the stages)")
    try:
        return flag_argv(stage, flags, where, name=SCRIPTS[stage])
    except UnknownFlag as exc:
        raise ConfigError(str(exc)) from exc


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
        Stage("rollout", dataset.folder, ["rollkit", "rollout", "--input", str(dataset.input), "--output", str(p["rollouts"]),
                                          *flag_args("rollout", rollout, where("rollout"))], p["rollouts"],
              dataset.input),
        Stage("pack", dataset.folder, ["rollkit", "pack", "--rollouts", str(p["rollouts"]),
                                       "--out-dir", str(p["batch"]), *flag_args("pack", pack, where("pack"))],
              p["batch"] / "manifest.json"),
        Stage("batch", dataset.folder, ["rollkit", "batch", "--batch-dir", str(p["batch"]),
                                        *flag_args("batch", batch, where("batch"))], p["batch"] / "results"),
        Stage("map", dataset.folder, ["rollkit", "map", "--rollouts", str(p["rollouts"]), "--results",
                                      str(p["batch"] / "results"), "--output", str(p["verified"]),
                                      *flag_args("map", _flags(config, dataset, "map"), where("map"))], p["verified"]),
    ]
    for export in config.exports:
        flags = {"dataset-name": dataset.name, **{k: v for k, v in export.items() if k != "output"},
                 **dataset.overrides.get("export", {})}
        target = p["training"] / export["output"]
        stages.append(Stage(f"export:{export['output']}", dataset.folder,
                            ["rollkit", "export", "--rollouts", str(p["verified"]), "--output", str(target),
                             *flag_args("export", flags, where("export"))], target))
    return stages


def build_plan(config: RunConfig) -> list[Stage]:
    stages = [stage for dataset in config.datasets for stage in dataset_stages(config, dataset)]
    if config.report:
        flags = flag_args("report", config.stages["report"], f"{config.path} [report]")
        out = config.root / "report"
        stages.append(Stage("report", None, ["rollkit", "report", str(config.root), "--out", str(out), *flags],
                            out / "index.html"))
    return stages


def state_path(config: RunConfig, stage: Stage) -> Path:
    name = stage.name.replace(":", "_").replace("/", "_")
    return config.root / "pipeline_state" / f"{stage.dataset or '_run'}.{name}.json"
