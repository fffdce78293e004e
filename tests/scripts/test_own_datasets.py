"""A user's own datasets, end to end through rollout.py and export_dataset.py against the emulator:
each goes to a training set with one command, or stops at once with exit 2 naming the file, the
field and the flag."""

from __future__ import annotations

import csv
import json

import datasets
import pytest
from PIL import Image

from rollkit.emulator.answers import load_answer_key, truth_for_question
from rollkit.emulator.testing import run_emulator
from tests.support import read_jsonl, run_script, script_env


def png(color: str) -> Image.Image:
    return Image.new("RGB", (16, 12), color)


def rollout(url: str, data, out, env, *extra: str):
    return run_script("rollout.py", "--input", str(data), "--output", str(out), "--base-url", f"{url}/v1",
                      "--model_name", "policy", "--num-rollouts", "2", "--num-mc", "2", "--concurrency", "8",
                      "--request-timeout", "5", "--scoring-mode", "vqa_score", *extra, env=env)


def export(rollouts, out, env):
    return run_script("export_dataset.py", "--rollouts", str(rollouts), "--format", "trl-prm", "--labels",
                      "mc-soft", "--output", str(out), env=env)


def training_rows(tmp_path, url, name: str, data, env, *extra: str) -> tuple[list[dict], list[dict]]:
    out, train = tmp_path / f"{name}.rollouts.jsonl", tmp_path / f"{name}.train.jsonl"
    done = rollout(url, data, out, env, *extra)
    assert done.returncode == 0, done.stderr
    exported = export(out, train, env)
    assert exported.returncode == 0, exported.stderr
    return read_jsonl(out), read_jsonl(train)


@pytest.fixture
def env(tmp_path):
    return script_env(ROLLKIT_IMAGE_CACHE=str(tmp_path / "cache"))


def test_csv_hf_parquet_multiple_choice_gsm8k_and_math_to_training_sets(tmp_path, env):
    png("red").save(tmp_path / "red.png")
    png("blue").save(tmp_path / "blue.png")
    with open(tmp_path / "q.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerows([("question", "answer", "image_path"), ("Which colour is it?", "red", "red.png"),
                          ("Which colour is it?", "blue", "blue.png")])
    features = datasets.Features({"question": datasets.Value("string"), "answer": datasets.Value("string"),
                                  "image": datasets.Image()})
    datasets.Dataset.from_dict({"question": ["What colour?", "What colour?"], "answer": ["green", "white"],
                                "image": [png("green"), png("white")]}, features=features).to_parquet(tmp_path / "hf.parquet")
    (tmp_path / "mc.json").write_text(json.dumps([
        {"question": "Which is a fruit?", "options": ["stone", "apple", "chair"], "answer": "B"},
        {"question": "Which is blue?", "options": ["sky", "grass"], "answer": "sky"}]), encoding="utf-8")
    (tmp_path / "gsm8k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"question": "Tom has 3 apples and buys 4. How many now?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
        {"question": "A box holds 9 pens; 2 boxes?", "answer": "9 * 2 = 18\n#### 18"}]), encoding="utf-8")
    (tmp_path / "math.jsonl").write_text(json.dumps(
        {"problem": "What is $1+1$?", "solution": r"We add: $1+1=\boxed{2}$.", "type": "Algebra"}) + "\n",
        encoding="utf-8")
    with run_emulator("--seed", "3") as url:
        rows = {name: training_rows(tmp_path, url, name, tmp_path / file, env, *extra) for name, file, extra in (
            ("csv", "q.csv", ()), ("hf", "hf.parquet", ()), ("mc", "mc.json", ()), ("gsm8k", "gsm8k.jsonl", ()),
            ("math", "math.jsonl", ("--question-field", "problem", "--answer-field", "solution")))}
    for name, (rollouts, train) in rows.items():
        expected = 2 if name == "math" else 4
        assert len(rollouts) == expected and train, name
    csv_rollouts, _ = rows["csv"]
    assert len({r["entry_id"] for r in csv_rollouts}) == 2  # same question, two pictures: two entries
    hf_rollouts, hf_train = rows["hf"]
    cached = {r["image"] for r in hf_rollouts}
    assert len(cached) == 2 and all((tmp_path / "cache" / name).is_file() for name in cached)
    mc_prompt = rows["mc"][0][0]["prompt"]["text"]
    assert "Options:\nA. stone\nB. apple\nC. chair" in mc_prompt or "Options:\nA. sky\nB. grass" in mc_prompt
    gsm_prompt = rows["gsm8k"][0][0]["prompt"]["text"]
    assert "[Visual Elements]" not in gsm_prompt and "[Reasoning]" in gsm_prompt


def test_unmapped_fields_stop_at_once_with_exit_2_naming_file_field_and_flag(tmp_path, env):
    img = tmp_path / "img.jsonl"
    img.write_text(json.dumps({"question": "What is it?", "img": "a.png", "answer": "cat"}) + "\n", encoding="utf-8")
    math = tmp_path / "math.jsonl"
    math.write_text(json.dumps({"problem": "1+1?", "solution": r"\boxed{2}"}) + "\n", encoding="utf-8")
    template = tmp_path / "prompt.txt"
    template.write_text("{{question}}\n{{options}}", encoding="utf-8")
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n", encoding="utf-8")
    url = "http://127.0.0.1:9"  # nothing is sent: every case stops before the first request
    for data, extra, message in (
            (img, (), f'{img}:1: "img" looks like an image but is not read as one (fields found: answer, img, '
                      'question); name it with --image-field img'),
            (math, (), f"{math}:1: no question field (fields found: problem, solution); name it with "
                       "--question-field problem"),
            (math, ("--question-field", "problem"), "no answer field (fields found: question, solution); name it "
                                                    "with --answer-field solution"),
            (plain, ("--prompt-file", f"rollout_text={template}"), "uses {{options}} but the record has no "
                                                                   '"options"')):
        for dry in ((), ("--dry-run",)):
            done = rollout(url, data, tmp_path / "out.jsonl", env, *extra, *dry)
            assert done.returncode == 2 and message in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_the_emulator_answers_from_the_dataset_whatever_its_format(tmp_path):
    with open(tmp_path / "gsm8k.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("question", "answer"), ("Tom has 3 and buys 4. How many?", "3 + 4 = 7\n#### 7"),
                                      ("Pick the fruit.", "B")])
    key = load_answer_key(tmp_path / "gsm8k.csv")
    assert truth_for_question("Tom has 3 and buys 4. How many?", key) == "7"
    assert truth_for_question("Pick the fruit.\n\nOptions:\nA. stone\nB. apple", key) == "B"
