"""`merge_and_map_batch.py pack`: requests, ids, exact token counts, limits, determinism, increments."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from rollkit.batch.limits import TARGETS, FileLimits
from rollkit.batch.pack import Packer, PackError, PackSettings
from rollkit.batch.verify_requests import request_tokens
from rollkit.content.images import load_image
from rollkit.content.inputs import entry_id
from rollkit.content.tokens import count_text, image_tokens
from tests.support import read_jsonl, script_env
from tests.support.batch import FIXTURE_ROLLOUTS, FIXTURES, PACK, make_rollouts

pytestmark = pytest.mark.timeout(120)


def pack(rollouts, out_dir: Path, **settings) -> Packer:
    packer = Packer(PackSettings(out_dir=out_dir, model=settings.pop("model", "gpt-4.1-nano-3"), **settings))
    packer.run([str(p) for p in (rollouts if isinstance(rollouts, list) else [rollouts])])
    return packer


def packed_lines(out_dir: Path) -> list[dict]:
    manifest = json.loads((out_dir / "manifest.json").read_text())
    return [line for f in manifest["files"] for line in read_jsonl(out_dir / f["name"])]


@pytest.fixture
def fixture_copy(tmp_path) -> Path:
    shutil.copy(FIXTURE_ROLLOUTS, tmp_path / "rollouts.jsonl")
    shutil.copytree(FIXTURES / "images", tmp_path / "images")
    return tmp_path / "rollouts.jsonl"


def test_fixture_rollouts_become_judge_requests_with_derived_ids(fixture_copy, tmp_path):
    packer = pack(fixture_copy, tmp_path / "out")
    assert packer.report.requests == 12 and packer.report.errors == 0
    records = read_jsonl(fixture_copy)
    lines = packed_lines(tmp_path / "out")
    seen: dict[str, int] = {}
    for record, line in zip(records, lines, strict=True):
        entry = entry_id(record)
        assert line["custom_id"] == f"{entry}:r{seen.get(entry, 0)}"  # k-th rollout of its entry
        seen[entry] = seen.get(entry, 0) + 1
        assert (line["method"], line["url"], line["body"]["model"]) == ("POST", "/chat/completions", "gpt-4.1-nano-3")
        text, image = line["body"]["messages"][0]["content"]
        # the judge sees the bare question, not the rollout prompt that held it
        inner = re.search(r"<question>(.*?)</question>", record["question"], re.DOTALL).group(1).strip()
        assert f"<question>\n{inner}\n</question>" in text["text"]
        assert "You are an advanced visual reasoning AI" not in text["text"]
        assert text["text"].rstrip().endswith(f"<solution>\n{record['response'].strip()}\n</solution>")
        assert "<conclusion>Correct</conclusion>" in text["text"]
        assert image["image_url"]["url"] == load_image(str(tmp_path / record["image"])).data_url
    assert list(seen.values()).count(1) < len(seen)  # some questions have several rollouts


def test_token_count_is_exact_and_images_count_by_their_size(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    noisy = Image.effect_noise((1024, 1024), 60).convert("RGB")
    noisy.save(folder / "noisy.png")
    Image.new("RGB", (1024, 1024), "white").save(folder / "flat.png")
    rows = [{"question": "How many?", "image": name, "response": "[Reasoning]\n<step_1>\nTwo.\n</step_1>\n"
             "<correct_answer>\n$\\boxed{2}$\n</correct_answer>"} for name in ("noisy.png", "flat.png")]
    (folder / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pack(folder / "r.jsonl", tmp_path / "out", max_completion_tokens=1000)
    tokens = [json.loads(line)["tokens"] for line in (tmp_path / "out" / "packed_ids.jsonl").read_text().splitlines()]
    lines = packed_lines(tmp_path / "out")
    for line, counted in zip(lines, tokens, strict=True):
        text = line["body"]["messages"][0]["content"][0]["text"]
        expected = 3 + 3 + count_text("user") + count_text(text, "gpt-4.1-nano-3") + image_tokens(1024, 1024) + 1000
        assert counted == expected == request_tokens(line)
    assert image_tokens(1024, 1024) == 765  # the vision guide's own example
    sizes = [len(line["body"]["messages"][0]["content"][1]["image_url"]["url"]) for line in lines]
    assert sizes[0] > 10 * sizes[1] and tokens[0] == tokens[1]  # same pixels, same tokens, whatever the base64


def test_each_image_is_encoded_once(tmp_path):
    rollouts = make_rollouts(tmp_path / "in", questions=6, per_question=3)
    load_image.cache_clear()
    pack(rollouts, tmp_path / "out")
    assert load_image.cache_info().misses == 6  # 18 rollouts, 6 images


@pytest.mark.parametrize("limit", ["lines", "bytes", "tokens"])
def test_files_are_cut_under_each_limit_and_filled_to_it(tmp_path, limit):
    rollouts = make_rollouts(tmp_path / "in", questions=12, per_question=2)
    probe = pack(rollouts, tmp_path / "probe", limits=FileLimits(10**6, 10**10, None))
    whole = probe.report.new_files[0]
    limits = {"lines": FileLimits(5, 10**10, None), "bytes": FileLimits(10**6, whole["bytes"] // 5, None),
              "tokens": FileLimits(10**6, 10**10, whole["tokens"] // 5)}[limit]
    out = tmp_path / "out"
    files = pack(rollouts, out, limits=limits).report.new_files
    assert len(files) >= 5 and sum(f["lines"] for f in files) == 24
    ids = read_jsonl(out / "packed_ids.jsonl")
    for index, entry in enumerate(files):
        data = (out / entry["name"]).read_bytes()
        rows = [r for r in ids if r["file"] == entry["name"]]
        assert (len(data), len(data.splitlines()), sum(r["tokens"] for r in rows)) == \
            (entry["bytes"], entry["lines"], entry["tokens"])
        assert entry["lines"] <= limits.max_lines and entry["bytes"] <= limits.max_bytes
        assert limits.max_tokens is None or entry["tokens"] <= limits.max_tokens
        if index + 1 < len(files):  # greedy: the next file's first line would not have fitted
            nxt = (out / files[index + 1]["name"]).read_bytes().splitlines(keepends=True)[0]
            nxt_tokens = next(r["tokens"] for r in ids if r["file"] == files[index + 1]["name"])
            assert (entry["lines"] + 1 > limits.max_lines or entry["bytes"] + len(nxt) > limits.max_bytes
                    or entry["tokens"] + nxt_tokens > (limits.max_tokens or 10**18))


def test_pack_is_deterministic_and_incremental(tmp_path):
    first = make_rollouts(tmp_path / "in", questions=5, per_question=2, seed=1, name="a.jsonl")
    limits = FileLimits(4, 10**9, None)
    for name in ("one", "two"):
        pack(first, tmp_path / name, limits=limits)
    one, two = tmp_path / "one", tmp_path / "two"
    assert sorted(os.listdir(one)) == sorted(os.listdir(two))
    for name in os.listdir(one):
        if not name.endswith(".lock"):
            assert (one / name).read_bytes() == (two / name).read_bytes(), name
    again = pack(first, one, limits=limits).report
    assert (again.requests, again.already_packed, again.new_files) == (0, 10, [])
    second = make_rollouts(tmp_path / "in", questions=3, per_question=1, seed=2, name="b.jsonl")
    more = pack([first, second], one, limits=limits).report
    assert (more.requests, more.already_packed) == (3, 10)
    assert [f["name"] for f in more.new_files] == ["batch_0004.jsonl"]
    ids = [r["custom_id"] for r in read_jsonl(one / "packed_ids.jsonl")]
    assert len(ids) == len(set(ids)) == 13
    with pytest.raises(PackError, match="model"):
        pack(first, one, model="another-deployment")


def test_verified_rollouts_and_bad_rollouts_are_left_out(tmp_path):
    rollouts = make_rollouts(tmp_path / "in", questions=4, per_question=1)
    lines = rollouts.read_text().splitlines()
    broken = json.loads(lines[0]) | {"response": ""}
    missing = json.loads(lines[1]) | {"image": "images/nowhere.png"}
    rollouts.write_text("\n".join([json.dumps(broken), json.dumps(missing), *lines[2:], "{not json"]) + "\n")
    probe = pack(rollouts, tmp_path / "probe")
    done_id = packed_lines(tmp_path / "probe")[0]["custom_id"]
    results = tmp_path / "results.jsonl"
    body = {"model": "m", "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}]}
    results.write_text(json.dumps({"custom_id": done_id, "response": {"status_code": 200, "body": body}}) + "\n")
    report = pack(rollouts, tmp_path / "out", verified=[str(results)]).report
    assert (probe.report.requests, report.requests, report.already_verified, report.errors) == (2, 1, 1, 3)
    errors = {e["reason"]: e["message"] for e in read_jsonl(tmp_path / "out" / "pack.errors.jsonl")}
    assert set(errors) == {"bad_rollout", "bad_image", "bad_input"} and "invalid JSON" in errors["bad_input"]
    reasons = [e["message"] for e in read_jsonl(tmp_path / "out" / "pack.errors.jsonl")]
    assert any("response" in r for r in reasons) and any("nowhere.png" in r for r in reasons)


def test_a_crash_before_the_manifest_is_repaired_with_the_same_bytes(tmp_path):
    rollouts = make_rollouts(tmp_path / "in", questions=6, per_question=1)
    out = tmp_path / "out"
    pack(rollouts, out, limits=FileLimits(4, 10**9, None))
    last = (out / "batch_0002.jsonl").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"].pop()  # as if killed after the file and its ids, before the manifest
    (out / "manifest.json").write_text(json.dumps(manifest))
    report = pack(rollouts, out, limits=FileLimits(4, 10**9, None)).report
    assert (report.requests, report.already_packed) == (2, 4)
    assert (out / "batch_0002.jsonl").read_bytes() == last
    assert len(read_jsonl(out / "packed_ids.jsonl")) == 6


def test_defaults_follow_the_documented_limits():
    assert TARGETS["openai"].limits == FileLimits(50_000, 200_000_000, None)
    assert TARGETS["azure"].limits == FileLimits(100_000, 200_000_000, 50_000_000)
    assert (TARGETS["openai"].url, TARGETS["azure"].url) == ("/v1/chat/completions", "/chat/completions")


def test_seed_command_line_and_folder_convention(tmp_path, fixture_copy):
    split = tmp_path / "rollout_output_data_files" / "vqav2_4k"
    split.mkdir(parents=True)
    shutil.move(fixture_copy, split / "rollouts.jsonl")
    shutil.move(tmp_path / "images", split / "images")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, PACK, *args], cwd=tmp_path, env=script_env(),
                              capture_output=True, text=True, timeout=60)

    done = run("--split=vqav2_4k", "--model=gpt-4.1-nano-3")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "batch_files" / "vqav2_4k" / "manifest.json").read_text())
    assert manifest["schema_version"] == 1 and manifest["model"] == "gpt-4.1-nano-3"
    assert [f["name"] for f in manifest["files"]] == ["vqav2_4k_0001.jsonl"] and manifest["files"][0]["lines"] == 12
    mapped = run("map", "--split", "vqav2_4k")
    assert mapped.returncode == 0, mapped.stderr
    assert "no result yet for 12 rollouts" in mapped.stdout
    out = read_jsonl(tmp_path / "verified_output_data_files" / "vqav2_4k.jsonl")
    assert len(out) == 12 and {r["verification_status"] for r in out} == {"pending"}
    usage = run("pack", "--model", "m")
    assert usage.returncode == 2 and "--split" in usage.stderr


def test_base64_is_not_counted_as_text():
    raw = (FIXTURES / "images" / "COCO_train2014_000000121867.jpg").read_bytes()
    chars = len(base64.b64encode(raw))
    assert chars > 40_000 and image_tokens(640, 480) < 1_500  # thousands of times fewer tokens than characters


def text_rollouts(path: Path, responses: list[str]) -> Path:
    rows = [{"question": f"Question {i}: how many?", "response": text} for i, text in enumerate(responses)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_max_model_len_lowers_each_lines_budget_and_refuses_what_cannot_fit(tmp_path):
    step = "[Reasoning]\n<step_1>\nCount the apples: there are two of them on the table.\n</step_1>\n"
    rollouts = text_rollouts(tmp_path / "r.jsonl", ["Two.", step * 10, step * 150])
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, PACK, "pack", "--rollouts", str(rollouts), "--out-dir", str(out),
                          "--model", "smollm2", "--target", "vllm", "--max-model-len", "4096"],
                         capture_output=True, text=True, env=script_env(), timeout=60)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["max_model_len"] == 4096 and manifest["max_completion_tokens"] == 8192
    lines = packed_lines(out)
    budgets = [line["body"]["max_completion_tokens"] for line in lines]
    assert len(lines) == 2 and budgets[0] > budgets[1] >= 256
    for line in lines:  # the prompt counted with room to spare, plus the reply, within the context
        prompt = request_tokens(line) - line["body"]["max_completion_tokens"]
        assert prompt * 1.25 + line["body"]["max_completion_tokens"] <= 4096
    [error] = read_jsonl(out / "pack.errors.jsonl")
    assert error["reason"] == "over_context" and "--max-model-len 4096" in error["message"]
    # a folder packed for one context is not filled for another
    again = subprocess.run([sys.executable, PACK, "pack", "--rollouts", str(rollouts), "--out-dir", str(out),
                            "--model", "smollm2", "--target", "vllm", "--max-model-len", "2048"],
                           capture_output=True, text=True, env=script_env(), timeout=60)
    assert again.returncode == 1 and "max_model_len=4096" in again.stderr


def test_without_max_model_len_the_budget_is_the_requested_one(tmp_path):
    rollouts = text_rollouts(tmp_path / "r.jsonl", ["Two."])
    pack(rollouts, tmp_path / "out", target="vllm", max_completion_tokens=8192)
    [line] = packed_lines(tmp_path / "out")
    assert line["body"]["max_completion_tokens"] == 8192
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["max_model_len"] is None
