"""run.toml: what to run, on which datasets, with which flags.

    root = "runs/vqav2"                 # every output goes below it (relative to this file)

    [endpoint]                          # given to rollout.py and batch_processor.py
    azure-endpoint = "https://NAME.openai.azure.com"

    [[dataset]]
    name = "vqav2"
    split = "4k"                        # optional: the folders are named vqav2_4k
    input = "data/vqav2_4k.jsonl"       # relative to this file
    rollout = { num-rollouts = 2 }      # optional: this dataset's own flags for any stage
    question-field = "problem"          # optional: the dataset's field names (rollout.py's --question-field,
    answer-field = "solution"           #   --answer-field, --image-field, --options-field)

    [rollout]                           # rollout.py's flags, by name: model_name, num-rollouts, mc-mode, ...
    model_name = "gpt-4.1"
    [pack]                              # merge_and_map_batch.py pack
    model = "gpt-4.1-batch"
    [batch]                             # batch_processor.py (model: pack's unless given)
    check-interval = 5
    [map]                               # merge_and_map_batch.py map
    [[export]]                          # export_dataset.py, once per table
    format = "trl-prm"
    labels = "consensus"
    output = "prm.parquet"              # a file name in training_data_files/<folder>/
    [report]                            # present: report.py over the root

Keys are the scripts' own flag names without the dashes (`num-rollouts` or `num_rollouts`, as the
script spells it; both are tried); `true` gives a switch, `false` leaves it out, a list gives
several values. The folders and the files that tie stages together are set by the pipeline.

`example_config` writes the run.toml of the bundled VQAv2 example (example.toml, shipped in the package).
"""

from __future__ import annotations

import json
import re
import string
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

STAGE_TABLES = ("rollout", "pack", "batch", "map", "report")
FIELD_KEYS = ("question-field", "answer-field", "image-field", "options-field")  # a dataset's field names
RATE_LIMIT_KEYS = {"rpm", "tpm", "port", "window-seconds", "window_seconds"}  # rollout.py only


class ConfigError(ValueError):
    """A run.toml that cannot be run: exit status 2."""


@dataclass(frozen=True)
class Dataset:
    name: str
    input: Path
    split: str | None = None
    overrides: dict = field(default_factory=dict)  # stage -> flags

    @property
    def folder(self) -> str:
        return f"{self.name}_{self.split}" if self.split else self.name


@dataclass(frozen=True)
class RunConfig:
    path: Path
    root: Path
    endpoint: dict
    datasets: list[Dataset]
    stages: dict[str, dict]  # stage table -> flags
    exports: list[dict]
    report: bool
    raw: dict


def key_line(text: str, key: str) -> str:
    """` (line N)` where `key` is first set or opened as a table in the TOML text, else ''."""
    pattern = re.compile(rf"^\s*(?:\[\[?\s*{re.escape(key)}\s*\]\]?|\"?{re.escape(key)}\"?\s*=)", re.MULTILINE)
    found = pattern.search(text)
    return f" (line {text.count(chr(10), 0, found.start()) + 1})" if found else ""


def _table(data: dict, name: str, where: str) -> dict:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    return dict(value)


def _dataset(raw: object, index: int, base: Path, path: str = "", text: str = "") -> Dataset:
    where = f"{path}: [[dataset]] {index + 1}" if path else f"[[dataset]] {index + 1}"
    if isinstance(raw, dict):
        unknown = set(raw) - {"name", "input", "split", *STAGE_TABLES, "export", *FIELD_KEYS}
        if unknown:
            raise ConfigError(f"{where}: unknown keys " + ", ".join(f"{k}{key_line(text, k)}" for k in sorted(unknown))
                              + f"; a dataset takes name, input, split, {', '.join(FIELD_KEYS)} and stage tables")
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not isinstance(raw.get("input"), str):
        raise ConfigError(f"{where}: needs name and input strings")
    overrides = {stage: _table(raw, stage, where) for stage in (*STAGE_TABLES, "export") if stage in raw}
    unknown = set(raw) - {"name", "input", "split", *overrides, *FIELD_KEYS}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    fields = {key: raw[key] for key in FIELD_KEYS if key in raw}
    if not all(isinstance(value, str) for value in fields.values()):
        raise ConfigError(f"{where}: {', '.join(fields)} must be strings (field names)")
    if fields:  # the rollout reads the dataset; later stages read its output, in rollkit's names
        overrides["rollout"] = {**fields, **overrides.get("rollout", {})}
    return Dataset(raw["name"], (base / raw["input"]).resolve(), raw.get("split"), overrides)


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    base = path.resolve().parent
    unknown = set(raw) - {"root", "endpoint", "dataset", "export", *STAGE_TABLES}
    if unknown:
        raise ConfigError(f"{path}: unknown keys " + ", ".join(f"{k}{key_line(text, k)}" for k in sorted(unknown)))
    if isinstance(raw.get("dataset"), dict):
        raise ConfigError(f"{path}{key_line(text, 'dataset')}: [dataset] is one table; datasets are written "
                          "[[dataset]] (double brackets), one per dataset")
    if not isinstance(raw.get("root"), str):
        raise ConfigError(f"{path}: root = \"FOLDER\" is required")
    datasets = [_dataset(d, i, base, f"{path}", text) for i, d in enumerate(raw.get("dataset") or [])]
    if not datasets:
        raise ConfigError(f"{path}: at least one [[dataset]] is required")
    if len({d.folder for d in datasets}) != len(datasets):
        raise ConfigError(f"{path}: two datasets share the folder name (name and split)")
    exports = raw.get("export") or []
    if not isinstance(exports, list) or not all(isinstance(e, dict) and "output" in e and "format" in e
                                                for e in exports):
        raise ConfigError(f"{path}: every [[export]] needs format and output")
    stages = {name: _table(raw, name, str(path)) for name in STAGE_TABLES}
    if "model" not in stages["pack"]:
        raise ConfigError(f"{path}: [pack] model is required (the judge deployment or model)")
    return RunConfig(path=path, root=(base / raw["root"]).resolve(), endpoint=_table(raw, "endpoint", str(path)),
                     datasets=datasets, stages=stages, exports=list(exports), report="report" in raw, raw=raw)


def example_config(base_url: str, input: str | Path, root: str | Path) -> str:
    """The run.toml of the bundled VQAv2 example against `base_url` (an emulator's, with /v1), reading
    `input` into `root` (both relative to where the file is written, or absolute): the one config the
    demo (run_demo.sh), CI's wheel check (.ci/check_wheel.sh) and the pipeline tests run."""
    template = resources.files(__package__).joinpath("example.toml").read_text(encoding="utf-8")
    return string.Template(template).substitute(base_url=json.dumps(base_url), input=json.dumps(str(input)),
                                                root=json.dumps(str(root)))
