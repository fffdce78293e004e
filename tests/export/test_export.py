"""export_dataset.py on the seed's real rollouts and o4-mini verdicts: every format and label policy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.support import FIXTURES, read_jsonl, run_script
from tests.support.export import MERGED, ROLLOUTS, VERDICTS, _verdict, export, summary

VERIFIED_IDS = {d["custom_id"] for d in json.loads(VERDICTS.read_text())}






def boxed_right(record: dict) -> bool:
    """Read by hand from the fixture: the boxed answer equals the dataset's answer."""
    return re.findall(r"boxed\{(.*?)\}", record["response"])[-1] == record["answer"]


@pytest.fixture(scope="module")
def verified(tmp_path_factory) -> Path:
    """The 12 real rollouts mapped onto the real verdicts by `map` (4 of them have one)."""
    folder = tmp_path_factory.mktemp("verified")
    rollouts = [{**r, "rollout_id": r["unique_id"], "image_root": str(FIXTURES)} for r in read_jsonl(MERGED)]
    (folder / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rollouts))
    done = run_script("merge_and_map_batch.py", "map", "--rollouts", str(folder / "rollouts.jsonl"),
                      "--results", str(VERDICTS), "--output", str(folder / "verified.jsonl"))
    assert done.returncode == 0, done.stderr
    return folder / "verified.jsonl"


@pytest.mark.parametrize("policy", ["mc-hard", "mc-soft"])
def test_prm_rows_say_what_the_rollouts_say(tmp_path, policy):
    out = tmp_path / "prm.jsonl"
    code, stdout, stderr = export("--rollouts", str(ROLLOUTS), "--format", "trl-prm", "--labels", policy,
                                  "--output", str(out))
    assert code == 0, stderr
    rows, source = read_jsonl(out), read_jsonl(ROLLOUTS)
    assert len(rows) == 12 and "read      12 rollouts" in stdout
    for row, record in zip(rows, source, strict=True):
        assert row["completions"] == [s["step"] for s in record["steps_with_score"]]
        scores = [s["score"] for s in record["steps_with_score"]]
        assert row["labels"] == (scores if policy == "mc-soft" else [s > 0 for s in scores])
        assert row["prompt"].startswith(record["question"].split("<question>\n")[1].split("\n</question>")[0])
        assert "<question>" not in row["prompt"] and row["filled_steps"] == []
        assert len(row["images"]) == 1 and not Path(row["images"][0]).is_absolute()
        with Image.open(out.parent / row["images"][0]) as image:  # opens from the output's folder
            assert image.size[0] > 0


def test_threshold_moves_the_hard_rule(tmp_path):
    out = tmp_path / "prm.jsonl"
    assert export("--rollouts", str(ROLLOUTS), "--format", "trl-prm", "--threshold", "0.05",
                  "--output", str(out))[0] == 0
    first = read_jsonl(out)[0]  # scores 0,0,0,0.0625,0,...: only the 0.0625 step is above 0.05
    assert first["labels"] == [i == 3 for i in range(12)]


def test_judge_labels_and_what_has_no_verdict(tmp_path, verified):
    out = tmp_path / "judge.jsonl"
    code, stdout, _ = export("--rollouts", str(verified), "--format", "trl-prm", "--labels", "judge",
                             "--output", str(out))
    assert code == 0
    rows = read_jsonl(out)
    assert {r["rollout_id"] for r in rows} == VERIFIED_IDS & {r["unique_id"] for r in read_jsonl(MERGED)}
    assert all(all(r["labels"]) for r in rows)  # o4-mini concluded Correct on all four
    assert summary(out)["dropped"] == {"no_verdict": 8}
    assert "dropped   8: no_verdict 8" in stdout


def test_consensus_on_the_real_verdicts_counted_by_hand(tmp_path, verified):
    # The four rollouts with a verdict, read off the fixture: 7056ee67 and eeb7c051 score 0 at
    # every step (answers AH129 and 129 for 29) yet o4-mini says Correct; 63f5366b and 1c280e40
    # score 1.0 at every step and o4-mini says Correct. So MC and the judge disagree on 2 of 4.
    out = tmp_path / "consensus.jsonl"
    code, stdout, _ = export("--rollouts", str(verified), "--format", "trl-prm", "--labels", "consensus",
                             "--output", str(out))
    assert code == 0
    assert sorted(r["rollout_id"][:8] for r in read_jsonl(out)) == ["1c280e40", "63f5366b"]
    assert summary(out)["dropped"] == {"disagree_mc_error_judge_correct": 2, "no_verdict": 8}




def test_consensus_keeps_only_an_agreeing_first_error(tmp_path):
    merged = read_jsonl(MERGED)
    # 0: MC's first zero is step 0; 5: every step scores 1.0 (7 steps: 4 perception, 3 reasoning)
    picks = [(merged[0], ("perception", 1)), (merged[1], ("reasoning", 2)), (merged[5], ("perception", 2)),
             (merged[6], None)]
    records, verdicts = [], []
    for k, (record, wrong) in enumerate(picks):
        perception = sum("[Reasoning]" not in record["response"].split(f"<step_{i}>")[0]
                         for i in range(1, 20) if f"<step_{i}>" in record["response"].split("[Reasoning]")[0])
        records.append({**record, "rollout_id": f"case{k}", "image_root": str(FIXTURES)})
        verdicts.append({"custom_id": f"case{k}", "verification_response": _verdict(perception, wrong)})
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "v.json").write_text(json.dumps(verdicts))
    assert run_script("merge_and_map_batch.py", "map", "--rollouts", str(tmp_path / "r.jsonl"), "--results",
                      str(tmp_path / "v.json"), "--output", str(tmp_path / "verified.jsonl")).returncode == 0
    out = tmp_path / "c.jsonl"
    assert export("--rollouts", str(tmp_path / "verified.jsonl"), "--format", "trl-prm", "--labels", "consensus",
                  "--output", str(out))[0] == 0
    rows = read_jsonl(out)
    assert [r["rollout_id"] for r in rows] == ["case0", "case3"]
    assert rows[0]["labels"] == [False] * 12 and all(rows[1]["labels"])
    assert summary(out)["dropped"] == {"disagree_first_error_step": 1, "disagree_mc_sound_judge_incorrect": 1}
    judge = tmp_path / "j.jsonl"
    assert export("--rollouts", str(tmp_path / "verified.jsonl"), "--format", "trl-prm", "--labels", "judge",
                  "--output", str(judge))[0] == 0
    by_id = {r["rollout_id"]: r["labels"] for r in read_jsonl(judge)}
    perception_1 = sum(1 for _ in re.finditer(r"<step_\d+>", merged[1]["response"].split("[Reasoning]")[0]))
    assert by_id["case1"] == [i < perception_1 + 1 for i in range(len(merged[1]["steps_with_score"]))]
    assert by_id["case2"] == [True, False, False, False, False, False, False]


def test_both_schema_versions_read_the_same(tmp_path, verified):
    # map writes schema 2 (the judge's step in judge_first_incorrect_step, the MC int in
    # first_incorrect_step); schema 1 had the judge's dict in first_incorrect_step and the MC int
    # in mc_first_incorrect_step. Both must export to the same bytes.
    current = read_jsonl(verified)
    assert all("judge_first_incorrect_step" in r for r in current)
    old = [{**{k: v for k, v in r.items() if k not in ("first_incorrect_step", "judge_first_incorrect_step")},
            "first_incorrect_step": r["judge_first_incorrect_step"],
            "mc_first_incorrect_step": r.get("first_incorrect_step")} for r in current]
    (tmp_path / "v1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    for policy in ("judge", "consensus", "mc-hard"):
        old_out, new_out = tmp_path / f"old-{policy}.jsonl", tmp_path / f"new-{policy}.jsonl"
        assert export("--rollouts", str(tmp_path / "v1.jsonl"), "--format", "trl-prm", "--labels", policy,
                      "--output", str(old_out))[0] == 0
        assert export("--rollouts", str(verified), "--format", "trl-prm", "--labels", policy,
                      "--output", str(new_out))[0] == 0
        assert old_out.read_bytes() == new_out.read_bytes() and old_out.stat().st_size > 0


def test_sft_keeps_the_rollouts_that_reach_the_answer(tmp_path):
    out = tmp_path / "sft.jsonl"
    assert export("--rollouts", str(ROLLOUTS), "--format", "sft", "--dataset-name", "vqav2",
                  "--output", str(out))[0] == 0
    right = [r for r in read_jsonl(ROLLOUTS) if boxed_right(r)]
    rows = read_jsonl(out)
    assert len(right) == 7 and [r["conversations"][1]["value"] for r in rows] == [r["response"] for r in right]
    assert all(r["conversations"][0]["value"].startswith("<image>\n") for r in rows)
    assert summary(out)["dropped"] == {"sft_wrong_answer": 5}


def test_openrlhf_rows_mark_every_step(tmp_path):
    out = tmp_path / "o.jsonl"
    assert export("--rollouts", str(ROLLOUTS), "--format", "openrlhf-prm", "--output", str(out))[0] == 0
    for row, record in zip(read_jsonl(out), read_jsonl(ROLLOUTS), strict=True):
        assert row["input"].count("ки") == len(record["steps_with_score"]) == len(row["value"])
        assert row["value"] == ["+" if s["score"] > 0 else "-" for s in record["steps_with_score"]]


def test_split_by_question_duplicates_and_same_bytes(tmp_path):
    args = ["--rollouts", str(ROLLOUTS), str(ROLLOUTS), "--format", "trl-prm", "--split", "val=0.4"]
    code, stdout, _ = export(*args, "--output", str(tmp_path / "a.jsonl"))
    assert code == 0 and "duplicates 12 dropped" in stdout
    train, val = read_jsonl(tmp_path / "a.train.jsonl"), read_jsonl(tmp_path / "a.val.jsonl")
    assert len(train) + len(val) == 12 and train and val
    assert not {r["entry_id"] for r in train} & {r["entry_id"] for r in val}
    assert export(*args, "--output", str(tmp_path / "b.jsonl"))[0] == 0
    for name in ("train", "val"):
        assert (tmp_path / f"a.{name}.jsonl").read_bytes() == (tmp_path / f"b.{name}.jsonl").read_bytes()
    for name in ("a", "b"):
        assert export(*args, "--output", str(tmp_path / f"{name}.parquet"))[0] == 0
    assert (tmp_path / "a.val.parquet").read_bytes() == (tmp_path / "b.val.parquet").read_bytes()


def test_bad_lines_are_named_and_the_rest_exported(tmp_path):
    lines = [json.dumps({**r, "image_root": str(FIXTURES)}) for r in read_jsonl(ROLLOUTS)]
    (tmp_path / "in.jsonl").write_text("\n".join([lines[0], "{not json", lines[1]]) + "\n")
    code, stdout, stderr = export("--rollouts", str(tmp_path / "in.jsonl"), "--format", "trl-prm",
                                  "--output", str(tmp_path / "o.jsonl"))
    assert code == 0 and f"{tmp_path / 'in.jsonl'}:2" in stderr
    assert "read      2 rollouts, 1 unreadable lines" in stdout and len(read_jsonl(tmp_path / "o.jsonl")) == 2


def test_a_missing_image_drops_the_row_by_name(tmp_path):
    lines = ROLLOUTS.read_text().splitlines()
    (tmp_path / "in.jsonl").write_text(lines[0] + "\n")  # its image path points into tmp_path: not there
    code, stdout, stderr = export("--rollouts", str(tmp_path / "in.jsonl"), "--format", "trl-prm",
                                  "--output", str(tmp_path / "o.jsonl"))
    assert "image_missing 1" in stdout and f"{tmp_path / 'in.jsonl'}:1" in stderr
    assert code == 1 and "0 rows written from 1 rollouts (dropped: image_missing 1): " in stderr  # nothing useful
    assert "give --image-root" in stderr


def test_exit_status_for_empty_missing_and_bad_usage(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    assert export("--rollouts", str(tmp_path / "empty.jsonl"), "--format", "sft", "--output",
                  str(tmp_path / "o.jsonl"))[0] == 2
    code, _, stderr = export("--rollouts", str(tmp_path / "nope.jsonl"), "--format", "sft",
                             "--output", str(tmp_path / "o.jsonl"))
    assert code == 1 and "nope.jsonl" in stderr
    assert export("--rollouts", str(ROLLOUTS), "--format", "sft", "--split", "val=2",
                  "--output", str(tmp_path / "o.jsonl"))[0] == 2
    assert export("--rollouts", str(ROLLOUTS), "--format", "sft", "--scoring-mode", "llm_judge",
                  "--output", str(tmp_path / "o.jsonl"))[0] == 2


def test_hard_label_scores_are_never_soft_labels(tmp_path):
    # rollout.py --mc-mode adaptive stores hard labels as scores and says so in score_kind
    records = [{**r, "score_kind": "label", "image_root": str(FIXTURES)} for r in read_jsonl(ROLLOUTS)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    code, _, stderr = export("--rollouts", str(tmp_path / "in.jsonl"), "--format", "trl-prm", "--labels", "mc-soft",
                             "--output", str(tmp_path / "soft.jsonl"))
    assert code == 1 and "take --labels mc-hard" in stderr  # every row dropped: not a quiet 0
    assert summary(tmp_path / "soft.jsonl")["dropped"] == {"scores_are_labels": 12}
    assert export("--rollouts", str(tmp_path / "in.jsonl"), "--format", "trl-prm", "--labels", "mc-hard",
                  "--output", str(tmp_path / "hard.jsonl"))[0] == 0
    assert len(read_jsonl(tmp_path / "hard.jsonl")) == 12
