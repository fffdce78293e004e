"""export_dataset.py on rollout.py's own output (binary search, against the emulator): unmeasured
steps, DPO pairs, and every format loading in HF `datasets` with TRL's column names."""

from __future__ import annotations

import json
import random
from pathlib import Path

import datasets
import pytest

from rollkit.emulator.testing import run_emulator
from tests.support import FIXTURES, ROOT, read_jsonl, run_script

QUESTIONS = ROOT / "input_data_files" / "VQAv2" / "questions.jsonl"
TRL_STEPWISE_COLUMNS = {"prompt", "completions", "labels"}  # TRL's stepwise supervision type


@pytest.fixture(scope="module")
def rollouts(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rollouts") / "rollouts.jsonl"
    with run_emulator("--seed", "3", "--answer-key", str(QUESTIONS)) as url:
        done = run_script("rollout.py", "--input", str(QUESTIONS), "--output", str(out), "--base-url", f"{url}/v1",
                          "--model_name", "p", "--dataset-name", "vqav2", "--num-rollouts", "4", "--num-mc", "2",
                          "--mc-mode", "binary-search")
    assert done.returncode == 0, done.stderr
    return out


def export(*args: str) -> tuple[int, str]:
    done = run_script("export_dataset.py", *args)
    assert done.returncode == 0, done.stderr
    return done.returncode, done.stdout


def test_unmeasured_steps_are_dropped_or_filled_by_the_monotone_rule(tmp_path, rollouts):
    records = read_jsonl(rollouts)
    unmeasured = [r for r in records if not all(s["measured"] for s in r["steps_with_score"])]
    assert unmeasured  # binary search leaves steps unmeasured
    export("--rollouts", str(rollouts), "--format", "trl-prm", "--output", str(tmp_path / "drop.jsonl"))
    dropped = json.loads((tmp_path / "drop.jsonl.summary.json").read_text())
    assert dropped["dropped"] == {"unmeasured_steps": len(unmeasured)}
    assert len(read_jsonl(tmp_path / "drop.jsonl")) == len(records) - len(unmeasured)
    export("--rollouts", str(rollouts), "--format", "trl-prm", "--fill-unmeasured",
           "--output", str(tmp_path / "fill.jsonl"))
    rows = {r["rollout_id"]: r for r in read_jsonl(tmp_path / "fill.jsonl")}
    assert len(rows) == len(records)
    for record in records:
        row, steps = rows[record["rollout_id"]], record["steps_with_score"]
        assert row["filled_steps"] == [i for i, s in enumerate(steps) if not s["measured"]]
        first = record["first_incorrect_step"]
        # monotone: good before Monte-Carlo's first zero, bad from it on
        assert row["labels"] == [first is None or i < first for i in range(len(steps))]


def test_pairs_put_a_right_and_a_wrong_rollout_of_one_question(tmp_path, rollouts):
    export("--rollouts", str(rollouts), "--format", "pairs", "--fill-unmeasured", "--output", str(tmp_path / "p.jsonl"))
    by_id = {r["rollout_id"]: r for r in read_jsonl(rollouts)}
    pairs = read_jsonl(tmp_path / "p.jsonl")
    assert pairs
    for pair in pairs:
        chosen, rejected = by_id[pair["chosen_rollout_id"]], by_id[pair["rejected_rollout_id"]]
        assert chosen["entry_id"] == rejected["entry_id"] == pair["entry_id"]
        assert chosen["is_correct"] and not rejected["is_correct"]
        assert (pair["chosen"], pair["rejected"]) == (chosen["response"], rejected["response"])
    used = [p["chosen_rollout_id"] for p in pairs] + [p["rejected_rollout_id"] for p in pairs]
    assert len(used) == len(set(used))
    per_question: dict[str, list[bool]] = {}
    for record in by_id.values():
        per_question.setdefault(record["entry_id"], []).append(record["is_correct"])
    assert len(pairs) == sum(min(sum(v), len(v) - sum(v)) for v in per_question.values())


def test_pairs_form_when_a_questions_rollouts_are_spread_over_files_in_any_order(tmp_path, rollouts):
    lines = rollouts.read_text().splitlines(keepends=True)
    random.Random(4).shuffle(lines)
    halves = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for number, half in enumerate(halves):
        half.write_text("".join(lines[number::2]))
    export("--rollouts", str(rollouts), "--format", "pairs", "--fill-unmeasured", "--output", str(tmp_path / "p.jsonl"))
    export("--rollouts", *map(str, halves), "--format", "pairs", "--fill-unmeasured",
           "--output", str(tmp_path / "spread.jsonl"))
    together = json.loads((tmp_path / "p.jsonl.summary.json").read_text())
    spread = json.loads((tmp_path / "spread.jsonl.summary.json").read_text())
    assert len(read_jsonl(tmp_path / "spread.jsonl")) == len(read_jsonl(tmp_path / "p.jsonl"))
    assert spread["unpaired"] == together["unpaired"] > 0


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
@pytest.mark.parametrize("fmt", ["trl-prm", "openrlhf-prm", "sft", "pairs"])
def test_hf_datasets_loads_every_format(tmp_path, rollouts, fmt, suffix):
    out = tmp_path / f"{fmt}.{suffix}"
    export("--rollouts", str(rollouts), "--format", fmt, "--fill-unmeasured", "--split", "val=0.3",
           "--output", str(out))
    files = {name: str(tmp_path / f"{fmt}.{name}.{suffix}") for name in ("train", "val")}
    loaded = datasets.load_dataset("json" if suffix == "jsonl" else "parquet", data_files=files,
                                   cache_dir=str(tmp_path / "cache"))
    rows = read_jsonl(tmp_path / f"{fmt}.train.jsonl") if suffix == "jsonl" else None
    assert loaded["train"].num_rows > 0 and (rows is None or loaded["train"].num_rows == len(rows))
    assert not set(loaded["train"]["entry_id"]) & set(loaded["val"]["entry_id"])
    for image in loaded["train"][0]["images"]:
        assert (tmp_path / image).is_file()
    features = loaded["train"].features
    if fmt == "trl-prm":
        assert TRL_STEPWISE_COLUMNS <= set(features)
        assert features["labels"].feature.dtype == "bool" and features["completions"].feature.dtype == "string"
    if fmt == "pairs":
        assert {"prompt", "chosen", "rejected", "images"} <= set(features)


def test_soft_labels_load_as_floats(tmp_path):
    out = tmp_path / "soft.parquet"
    export("--rollouts", str(FIXTURES / "rollouts_gpt-4.1.jsonl"), "--format", "trl-prm", "--labels", "mc-soft",
           "--output", str(out))
    loaded = datasets.load_dataset("parquet", data_files=str(out), cache_dir=str(tmp_path / "cache"))["train"]
    assert loaded.features["labels"].feature.dtype == "float64" and loaded[0]["labels"][3] == 0.0625


def test_a_stage_folder_is_read_without_its_side_files(tmp_path, rollouts):
    # rollout.py's folder holds .summary.json, .config.json, .journal.jsonl and .errors.jsonl beside it
    assert (rollouts.parent / f"{rollouts.name}.summary.json").exists()
    done = run_script("export_dataset.py", "--rollouts", str(rollouts.parent), "--format", "trl-prm",
                      "--fill-unmeasured", "--output", str(tmp_path / "o.jsonl"))
    assert done.returncode == 0 and "0 unreadable lines" in done.stdout and "WARNING" not in done.stderr
    assert len(read_jsonl(tmp_path / "o.jsonl")) == len(read_jsonl(rollouts))


def test_an_export_that_writes_no_row_says_why_and_exits_1(tmp_path, rollouts):
    unmeasured = [r for r in read_jsonl(rollouts) if not all(s["measured"] for s in r["steps_with_score"])]
    only = tmp_path / "unmeasured.jsonl"
    only.write_text("".join(json.dumps(r) + "\n" for r in unmeasured))
    done = run_script("export_dataset.py", "--rollouts", str(only), "--format", "sft",
                      "--output", str(tmp_path / "sft.jsonl"))
    assert done.returncode == 1, done.stderr
    assert (f"0 rows written from {len(unmeasured)} rollouts (dropped: unmeasured_steps {len(unmeasured)}): "
            "the rollouts come from --mc-mode binary-search") in done.stderr and "--fill-unmeasured" in done.stderr
