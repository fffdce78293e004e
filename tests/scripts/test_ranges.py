"""The seed's ranges: batch numbers and record numbers from 1, both ends included; a range that
selects nothing exits 2 saying what exists."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from rollkit.emulator.datasets import write_questions
from rollkit.emulator.testing import get_stats, run_emulator
from tests.support import read_jsonl, run_script, start_script
from tests.support.batch import FAST, created_by_endpoint, make_rollouts, pack

pytestmark = pytest.mark.timeout(120)


def test_two_processes_with_seed_ranges_drive_every_file_once(tmp_path):
    rollouts = make_rollouts(tmp_path / "in", questions=4, per_question=2, seed=11)
    batch_dir = tmp_path / "batches"
    manifest = pack(rollouts, batch_dir, model="dep", lines=2)
    names = [f["name"] for f in manifest["files"]]
    assert names == ["batch_0001.jsonl", "batch_0002.jsonl", "batch_0003.jsonl", "batch_0004.jsonl"]
    with run_emulator(*FAST) as url:
        common = ["--batch-dir", str(batch_dir), "--base-url", f"{url}/v1", "--model", "dep",
                  "--check-interval", "0.01", "--no-progress"]
        # the seed's "1 2" and "3 4" on two machines: every file, none twice
        first = start_script("batch_processor.py", *common, "--start-index", "1", "--end-index", "2")
        second = run_script("batch_processor.py", *common, "--start-index", "3", "--end-index", "4")
        out, err = first.communicate(timeout=60)
        stats = get_stats(url, with_keys=False)["batch"]
    assert first.returncode == 0 and second.returncode == 0, err + second.stderr
    assert "done: 2 files" in out and "done: 2 files" in second.stdout
    created = created_by_endpoint(batch_dir)
    assert sum(created["default"].values()) == 4 and set(created["default"].values()) == {1}
    assert set(stats["created_by_sha256"].values()) == {1} and stats["lines_answered"] == 8
    done = Counter(e["kind"] for path in (batch_dir / "ledger").glob("batch_*.jsonl") for e in read_jsonl(path))
    assert done["file_done"] == 4


def test_a_range_that_selects_no_batch_exits_2_saying_what_exists(tmp_path):
    rollouts = make_rollouts(tmp_path / "in", questions=2, per_question=1, seed=12)
    batch_dir = tmp_path / "batches"
    pack(rollouts, batch_dir, model="dep", lines=1)
    common = ["--batch-dir", str(batch_dir), "--base-url", "http://127.0.0.1:9/v1", "--model", "dep"]
    for start, end in (("3", "4"), ("2", "1"), ("0", "1")):
        done = run_script("batch_processor.py", *common, "--start-index", start, "--end-index", end)
        assert done.returncode == 2, done.stderr
        assert "2 in all, numbered 1 to 2" in done.stderr and "batch_0001.jsonl ... batch_0002.jsonl" in done.stderr


def test_record_ranges_are_one_based_and_inclusive_and_empty_inputs_exit_2(tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", 4, images=1, shape="question")
    rows = read_jsonl(questions)
    out = tmp_path / "r.jsonl"
    with run_emulator() as url:
        common = ["--base-url", f"{url}/v1", "--model_name", "m", "--num-rollouts", "1", "--num-mc", "1",
                  "--answer-format", "correct_answer", "--scoring-mode", "vqav2_num_str_only_score"]
        done = run_script("rollout.py", "--input", str(questions), "--output", str(out), *common,
                          "--start", "2", "--end", "3")
        assert done.returncode == 0, done.stderr
        assert sorted(r["question"] for r in read_jsonl(out)) == sorted(r["question"] for r in rows[1:3])
        beyond = run_script("rollout.py", "--input", str(questions), "--output", str(tmp_path / "b.jsonl"), *common,
                            "--start", "5")
        (tmp_path / "empty.jsonl").write_text("\n")
        (tmp_path / "empty.json").write_text("[]")
        empty = [run_script("sampling.py", "--input_file", str(tmp_path / name), "--output_file",
                            str(tmp_path / f"{name}.out"), "--model_name", "m", "--base-url", f"{url}/v1")
                 for name in ("empty.jsonl", "empty.json")]
    assert beyond.returncode == 2 and "4 records (1 to 4); --start 5 selects none" in beyond.stderr
    assert not (tmp_path / "b.jsonl").exists()
    for result, name in zip(empty, ("empty.jsonl", "empty.json"), strict=True):
        assert result.returncode == 2 and f"{name}: no input records" in result.stderr
    assert json.loads((tmp_path / "q.jsonl").read_text().splitlines()[0])  # the input is untouched


def test_pack_and_map_of_an_empty_rollouts_file_exit_2(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    packed = run_script("merge_and_map_batch.py", "pack", "--rollouts", str(tmp_path / "empty.jsonl"),
                        "--out-dir", str(tmp_path / "b"), "--model", "m")
    mapped = run_script("merge_and_map_batch.py", "map", "--rollouts", str(tmp_path / "empty.jsonl"),
                        "--results", str(tmp_path), "--output", str(tmp_path / "v.jsonl"))
    for done in (packed, mapped):
        assert done.returncode == 2 and "empty.jsonl: no input records" in done.stderr
