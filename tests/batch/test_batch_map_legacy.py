"""`map` on the seed's files: `unique_id` rollouts, `*_verification_results.json`, batch folders,
and outputs of schema 1."""

from __future__ import annotations

import json
import shutil

import pytest

from rollkit.emulator.testing import run_emulator
from tests.support import FIXTURES, read_jsonl, run_script
from tests.support.batch import FAST, make_rollouts, ok_line, pack, process_batches

pytestmark = pytest.mark.timeout(120)

MERGED = FIXTURES / "rollouts_gpt-4.1_merged.jsonl"


def test_seed_unique_ids_join_the_seeds_verification_results(tmp_path):
    results = tmp_path / "vqav2_4k_batch_0001_verification_results.json"  # the seed processor's name
    shutil.copy(FIXTURES / "verification_o4-mini.json", results)
    done = run_script("merge_and_map_batch.py", "map", "--rollouts", str(MERGED), "--results", str(results),
                      "--output", str(tmp_path / "out.jsonl"), "--verification-model", "o4-mini")
    assert done.returncode == 0, done.stderr
    assert "mapped 12 rollouts: ok 4, pending 8" in done.stdout  # 4 verdicts belong to these rollouts
    out = read_jsonl(tmp_path / "out.jsonl")
    ok = [r for r in out if r["verification_status"] == "ok"]
    verified = {v["custom_id"] for v in json.loads(results.read_text())}
    assert {r["unique_id"] for r in ok} <= verified and all(r["rollout_id"] == r["unique_id"] for r in out)
    assert all(r["conclusion"] is True and r["judge_first_incorrect_step"] is None for r in ok)


def test_pack_uses_the_seeds_unique_id_as_custom_id(tmp_path):
    shutil.copy(MERGED, tmp_path / "merged.jsonl")
    shutil.copytree(FIXTURES / "images", tmp_path / "images")
    manifest = pack(tmp_path / "merged.jsonl", tmp_path / "batches", lines=100)
    lines = read_jsonl(tmp_path / "batches" / manifest["files"][0]["name"])
    assert [line["custom_id"] for line in lines] == [r["unique_id"] for r in read_jsonl(MERGED)]


def test_map_of_a_batch_folder_reads_its_results_without_warnings(tmp_path):
    rollouts = make_rollouts(tmp_path / "in", questions=3, per_question=1, seed=13)
    batch_dir = tmp_path / "batches"
    pack(rollouts, batch_dir, model="dep", lines=2)
    with run_emulator(*FAST) as url:
        ran = process_batches(batch_dir, url, "dep")
    assert ran.returncode == 0, ran.stderr
    done = run_script("merge_and_map_batch.py", "map", "--rollouts", str(rollouts), "--results", str(batch_dir),
                      "--output", str(tmp_path / "out.jsonl"))
    assert done.returncode == 0 and "mapped 3 rollouts: ok 3" in done.stdout, done.stdout + done.stderr
    assert "WARNING" not in done.stderr and "skipped" not in done.stderr, done.stderr


def test_outputs_of_schema_1_map_again_into_schema_2(tmp_path):
    response = "[Reasoning]\n<step_1>\ns\n</step_1>\n<correct_answer>\n$\\boxed{1}$\n</correct_answer>"
    old = [{"rollout_id": "r0", "question": "q?", "response": response, "verification_status": "ok",
            "first_incorrect_step": {"section": "reasoning", "index": 1, "step": 0}, "mc_first_incorrect_step": 0},
           {"rollout_id": "r1", "question": "q?", "response": response, "verification_status": "pending",
            "first_incorrect_step": None}]
    (tmp_path / "verified_v1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    incorrect = "<analysis_1>\nwrong\nVerdict: incorrect\n</analysis_1>\n<conclusion>Incorrect</conclusion>"
    (tmp_path / "res.jsonl").write_text(json.dumps(ok_line("r0", incorrect)) + "\n" +
                                        json.dumps(ok_line("r1", "<conclusion>Correct</conclusion>")) + "\n")
    done = run_script("merge_and_map_batch.py", "map", "--rollouts", str(tmp_path / "verified_v1.jsonl"),
                      "--results", str(tmp_path / "res.jsonl"), "--output", str(tmp_path / "v2.jsonl"))
    assert done.returncode == 0, done.stderr
    first, second = read_jsonl(tmp_path / "v2.jsonl")
    assert first["first_incorrect_step"] == 0 and "mc_first_incorrect_step" not in first
    assert first["judge_first_incorrect_step"] == {"section": "reasoning", "index": 1, "step": 0}
    assert second["first_incorrect_step"] is None and second["judge_first_incorrect_step"] is None
