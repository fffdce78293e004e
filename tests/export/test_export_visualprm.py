"""export_dataset.py --format visualprm on the seed's real rollouts and o4-mini verdicts: both chat
schemas, step tokens, --balance, --error-sections, every label policy, --prompt-file, and images
that stay found when the verified file lives in another folder than the rollouts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets
import pytest
from PIL import Image

from tests.support import FIXTURES, read_jsonl, run_script
from tests.support.export import MERGED, ROLLOUTS, VERDICTS, _verified_with_errors, export, summary

SEED = read_jsonl(ROLLOUTS)
BUILT_IN_PROMPT = Path(__file__).resolve().parents[2] / "rollkit" / "prompts" / "visualprm_system.txt"


def question_of(record: dict) -> str:
    return record["question"].split("<question>\n")[1].split("\n</question>")[0]


def turns(row: dict) -> list[tuple[str, str]]:
    """(role, text) of a row in either schema, image tags and parts left out."""
    if "conversations" in row:
        roles = {"system": "system", "human": "user", "gpt": "assistant"}
        return [(roles[t["from"]], t["value"].replace("<image>\n", "")) for t in row["conversations"]]
    return [(m["role"], "".join(p.get("text") or "" for p in m["content"])) for m in row["messages"]]


def visualprm(tmp_path: Path, *args: str, source: Path = ROLLOUTS, name: str = "vp.jsonl") -> tuple[list, str]:
    out = tmp_path / name
    code, stdout, stderr = export("--rollouts", str(source), "--format", "visualprm", "--output", str(out), *args)
    assert code == 0, stderr
    return read_jsonl(out), stdout


@pytest.mark.parametrize("schema", ["conversations", "messages"])
def test_one_turn_per_step_with_the_mc_token(tmp_path, schema):
    rows, stdout = visualprm(tmp_path, "--chat-schema", schema)
    assert len(rows) == 12 and "written   12 rows" in stdout
    for row, record in zip(rows, SEED, strict=True):
        steps = [s["step"] for s in record["steps_with_score"]]
        said = turns(row)
        assert said[0] == ("system", BUILT_IN_PROMPT.read_text().strip().replace("{{good}}", "+")
                           .replace("{{bad}}", "-"))
        assert [role for role, _ in said[1:]] == ["user", "assistant"] * len(steps)
        first = said[1][1]
        assert question_of(record) in first and first.endswith(steps[0]) and "<question>" not in first
        assert [text for _, text in said[3::2]] == steps[1:]  # every later user turn is the next step
        assert [text for _, text in said[2::2]] == ["+" if s["score"] > 0 else "-" for s in record["steps_with_score"]]
        assert row["rollout_id"] and row["label_policy"] == "mc-hard" and row["filled_steps"] == []
        images = [row["image"]] if schema == "conversations" else row["images"]
        assert len(images) == 1
        with Image.open(tmp_path / images[0]) as image:  # opens from the output's folder
            assert image.size[0] > 0
        if schema == "conversations":
            assert row["conversations"][1]["value"].startswith("<image>\n") and "images" not in row
        else:
            assert row["messages"][1]["content"][0] == {"type": "image", "text": "<image>"}
            assert row["image"] == row["images"][0]
            assert all(len(m["content"]) == 1 for m in row["messages"][2:])


@pytest.mark.parametrize("schema", ["conversations", "messages"])
@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_hf_datasets_loads_the_export_folder_with_both_schemas(tmp_path, schema, suffix):
    out = tmp_path / "export" / f"vp.{suffix}"
    assert export("--rollouts", str(ROLLOUTS), "--format", "visualprm", "--chat-schema", schema,
                  "--split", "val=0.3", "--output", str(out))[0] == 0
    # the folder as the seed's trainers load it: the summary and the resized copies are not rows
    loaded = datasets.load_dataset(str(out.parent), cache_dir=str(tmp_path / "cache"))
    assert sorted(loaded) == ["train", "validation"]
    assert loaded["train"].num_rows + loaded["validation"].num_rows == 12
    first = loaded["train"][0]
    if schema == "conversations":
        assert set(first["conversations"][0]) == {"from", "value"} and first["image"].endswith(".jpg")
        assert first["image_qwen_smart_resize"].startswith(".qwen_smart_resize/")
    else:
        user = first["messages"][1]
        assert user["role"] == "user" and user["content"][0] == {"type": "image", "text": "<image>"}
        assert first["messages"][2]["role"] == "assistant" and first["messages"][2]["content"][0]["text"] in ("+", "-")
        assert first["images"][0].endswith(".jpg")
        if suffix == "parquet":  # the image itself, as `datasets` stores images
            assert isinstance(first["image"], Image.Image) and first["image"].size[0] > 0
        else:
            assert (out.parent / first["image"]).is_file()


def test_custom_step_tokens_and_rows_whose_steps_hold_a_token(tmp_path):
    record = dict(SEED[5])  # every step scores 1.0
    steps = [dict(s) for s in record["steps_with_score"]]
    steps[-1]["step"] = "So 4 + 9 = 13 and the answer is 2."
    (tmp_path / "in.jsonl").write_text(json.dumps({**record, "steps_with_score": steps,
                                                   "image_root": str(FIXTURES)}) + "\n"
                                       + json.dumps({**SEED[6], "image_root": str(FIXTURES)}) + "\n")
    plain, stdout = visualprm(tmp_path, source=tmp_path / "in.jsonl")
    assert "token clash 1 rows" in stdout and "'<+>,<->' avoids it" in stdout
    assert summary(tmp_path / "vp.jsonl")["token_clash_rows"] == 1
    custom, stdout = visualprm(tmp_path, "--step-tokens", "<+>,<->", source=tmp_path / "in.jsonl", name="c.jsonl")
    assert "token clash 0 rows" in stdout
    assert {text for role, text in turns(custom[0]) if role == "assistant"} == {"<+>"}
    assert '"<+>"' in turns(custom[0])[0][1] and '"<->"' in turns(custom[0])[0][1]
    for bad in ("+", "+,+", "a b,-", "+,-,x"):
        code, _, stderr = export("--rollouts", str(ROLLOUTS), "--format", "visualprm", "--step-tokens", bad,
                                 "--output", str(tmp_path / "x.jsonl"))
        assert code == 2 and "--step-tokens" in stderr


def test_balance_drops_the_surplus_by_a_hash_of_the_rollout_id(tmp_path):
    # mc-hard on the seed: 5 rollouts score 0 at a step, 7 score 1.0 at every step
    rows, stdout = visualprm(tmp_path, "--balance")
    with_error = [r for r in rows if "-" in {t for role, t in turns(r) if role == "assistant"}]
    assert len(rows) == 10 and len(with_error) == 5 and "balance_surplus 2" in stdout
    everything = visualprm(tmp_path, name="all.jsonl")[0]
    sound = [r["rollout_id"] for r, rec in zip(everything, SEED, strict=True)
             if all(s["score"] > 0 for s in rec["steps_with_score"])]
    point = {rid: int.from_bytes(hashlib.md5(rid.encode()).digest()[:8], "big") for rid in sound}
    kept = sorted(sound, key=point.get)[:5]
    assert sorted(r["rollout_id"] for r in rows if r not in with_error) == sorted(kept)
    again, _ = visualprm(tmp_path, "--balance", name="again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "vp.jsonl").read_bytes() and again == rows




def test_error_sections_leave_out_the_other_sections_first_errors(tmp_path):
    verified = _verified_with_errors(tmp_path)
    assert [s["score"] for s in read_jsonl(MERGED)[1]["steps_with_score"]][:2] == [0.0, 0.0]
    kept = {}
    for section in ("all", "reasoning", "perception"):
        rows, _ = visualprm(tmp_path, "--labels", "judge", "--error-sections", section, source=verified,
                            name=f"{section}.jsonl")
        kept[section] = [r["rollout_id"] for r in rows]
    assert kept == {"all": ["case0", "case1", "case2"], "reasoning": ["case1", "case2"],
                    "perception": ["case0", "case2"]}
    assert summary(tmp_path / "reasoning.jsonl")["dropped"] == {"first_error_in_perception": 1}
    rows, _ = visualprm(tmp_path, "--labels", "judge", source=verified, name="tokens.jsonl")
    tokens = [t for role, t in turns(rows[1]) if role == "assistant"]  # wrong at reasoning 2
    perception = read_jsonl(MERGED)[1]["response"].split("[Reasoning]")[0].count("</step_")
    assert tokens == ["+"] * (perception + 1) + ["-"] * (len(tokens) - perception - 1)
    # mc-hard on the seed: every first zero is step 1 of [Visual Elements]
    rows, stdout = visualprm(tmp_path, "--error-sections", "reasoning", name="mc.jsonl")
    assert len(rows) == 7 and "first_error_in_perception 5" in stdout


@pytest.mark.parametrize("policy", ["mc-hard", "mc-soft", "judge", "consensus"])
def test_every_label_policy(tmp_path, policy):
    verified = tmp_path / "verified.jsonl"
    assert run_script("merge_and_map_batch.py", "map", "--rollouts", str(MERGED), "--results", str(VERDICTS),
                      "--output", str(verified)).returncode == 0
    rows, _ = visualprm(tmp_path, "--labels", policy, "--threshold", "0.05", source=verified)
    expected = {"mc-hard": 12, "mc-soft": 12, "judge": 4, "consensus": 2}[policy]
    assert len(rows) == expected and {r["label_policy"] for r in rows} == {policy}
    by_id = {r["unique_id"]: r for r in read_jsonl(MERGED)}
    for row in rows:
        tokens = [t for role, t in turns(row) if role == "assistant"]
        scores = [s["score"] for s in by_id[row["rollout_id"]]["steps_with_score"]]
        if policy in ("mc-hard", "mc-soft"):  # the same rule: above the threshold
            assert tokens == ["+" if s > 0.05 else "-" for s in scores]
        else:  # o4-mini said Correct on all four
            assert tokens == ["+"] * len(scores)


def test_prompt_file_replaces_the_system_prompt(tmp_path):
    (tmp_path / "p.txt").write_text("Grade each step: {{good}} right so far, {{bad}} not.\n")
    rows, _ = visualprm(tmp_path, "--prompt-file", str(tmp_path / "p.txt"), "--step-tokens", "<+>,<->")
    assert turns(rows[0])[0] == ("system", "Grade each step: <+> right so far, <-> not.")
    (tmp_path / "bad.txt").write_text("Grade {{question}}\n")
    for args in (["--format", "visualprm", "--prompt-file", str(tmp_path / "bad.txt")],
                 ["--format", "visualprm", "--prompt-file", str(tmp_path / "none.txt")],
                 ["--format", "trl-prm", "--balance"], ["--format", "sft", "--chat-schema", "messages"]):
        code, _, stderr = export("--rollouts", str(ROLLOUTS), "--output", str(tmp_path / "x.jsonl"), *args)
        assert code == 2 and ("--prompt-file" in stderr or "only for --format visualprm" in stderr)


def test_verified_in_another_folder_keeps_its_images(tmp_path):
    """The seed's rollouts name their images relative to their own file; map writes elsewhere."""
    verified = tmp_path / "elsewhere" / "verified.jsonl"
    done = run_script("merge_and_map_batch.py", "map", "--rollouts", str(MERGED), "--results", str(VERDICTS),
                      "--output", str(verified))
    assert done.returncode == 0, done.stderr
    assert {Path(r["image_root"]) for r in read_jsonl(verified)} == {FIXTURES.resolve()}
    for fmt in ("visualprm", "trl-prm"):
        out = tmp_path / f"{fmt}.jsonl"
        code, stdout, stderr = export("--rollouts", str(verified), "--format", fmt, "--labels", "consensus",
                                      "--output", str(out))
        assert code == 0, stderr
        # o4-mini's verdicts cover 4 of the 12; Monte-Carlo agrees on 63f5366b and 1c280e40
        assert sorted(r["rollout_id"][:8] for r in read_jsonl(out)) == ["1c280e40", "63f5366b"]
        assert summary(out)["dropped"] == {"disagree_mc_error_judge_correct": 2, "no_verdict": 8}
    for fmt in ("trl-prm", "openrlhf-prm", "sft", "pairs", "visualprm"):
        out = tmp_path / f"mc-{fmt}.jsonl"
        code, stdout, stderr = export("--rollouts", str(verified), "--format", fmt, "--output", str(out),
                                      "--dataset-name", "vqav2")
        assert "image_missing" not in stdout, stdout
        if fmt == "pairs":  # no seed question has both a right and a wrong rollout: nothing useful, exit 1
            assert code == 1 and "0 rows written from 12 rollouts" in stderr, stderr
        else:
            assert code == 0 and read_jsonl(out), stdout
    # a verified file written before map recorded image_root: dropped by name, found with --image-root
    old = tmp_path / "old" / "verified.jsonl"
    old.parent.mkdir()
    old.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "image_root"}) + "\n"
                           for r in read_jsonl(verified)))
    code, stdout, stderr = export("--rollouts", str(old), "--format", "visualprm", "--labels", "consensus",
                                  "--output", str(tmp_path / "lost.jsonl"))
    assert code == 1 and "image_missing 2" in stdout  # no row left: nothing useful written
    assert f"looked for {old.parent.resolve() / 'images' / 'COCO_train2014_000000050988.jpg'}" in stderr
    rows, stdout = visualprm(tmp_path, "--labels", "consensus", "--image-root", str(FIXTURES), source=old,
                             name="found.jsonl")
    assert len(rows) == 2 and "image_missing" not in stdout
    assert (tmp_path / rows[0]["image"]).resolve().parent == FIXTURES.resolve() / "images"
