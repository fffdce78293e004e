"""`pack --target azure|openai|vllm`: every line's url and model as that service accepts them, and
batch_processor.py rewriting only what another endpoint needs."""

from __future__ import annotations

import json

import pytest

from rollkit.emulator.testing import get_stats, run_emulator
from tests.support import read_jsonl, run_script
from tests.support.batch import FAST, make_rollouts, process_batches

pytestmark = pytest.mark.timeout(120)

# What each service takes for chat lines. vLLM: `create_request_task` in
# vllm/entrypoints/openai/run_batch.py answers any other url with "URL ... was used. Supported
# endpoints: /v1/chat/completions, ..."; OpenAI: /v1/chat/completions; Azure's batch docs use the
# legacy /chat/completions with the deployment name as `model`.
ACCEPTED = {"vllm": "/v1/chat/completions", "openai": "/v1/chat/completions", "azure": "/chat/completions"}


def pack(rollouts, out, *flags: str) -> list[dict]:
    done = run_script("merge_and_map_batch.py", "pack", "--rollouts", str(rollouts), "--out-dir", str(out), *flags)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    return [line for f in manifest["files"] for line in read_jsonl(out / f["name"])]


@pytest.mark.parametrize(("flags", "target", "model"), [
    (["--target", "vllm", "--model", "Qwen/Qwen2.5-VL-7B-Instruct"], "vllm", "Qwen/Qwen2.5-VL-7B-Instruct"),
    (["--target", "openai", "--model", "gpt-4.1"], "openai", "gpt-4.1"),
    (["--target", "azure", "--model", "gpt-4.1-batch-eastus"], "azure", "gpt-4.1-batch-eastus"),
    (["--port", "8000", "--model", "served-name"], "vllm", "served-name"),
    (["--base-url", "https://api.openai.com/v1", "--model", "o4-mini"], "openai", "o4-mini"),
    (["--azure-endpoint", "https://x.openai.azure.com", "--model", "dep"], "azure", "dep"),
    (["--model", "gpt-4.1-nano-3"], "azure", "gpt-4.1-nano-3"),  # the seed's default
])
def test_each_target_writes_the_url_and_model_its_service_accepts(tmp_path, flags, target, model):
    rollouts = make_rollouts(tmp_path / "in", questions=2, per_question=1, seed=21)
    lines = pack(rollouts, tmp_path / "out", *flags)
    assert {(line["url"], line["body"]["model"]) for line in lines} == {(ACCEPTED[target], model)}
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["target"] == target


def test_the_processor_rewrites_only_what_another_endpoint_needs(tmp_path):
    rollouts = make_rollouts(tmp_path / "in", questions=2, per_question=1, seed=22)
    azure_dir, vllm_dir = tmp_path / "azure", tmp_path / "vllm"
    packed = pack(rollouts, azure_dir, "--target", "azure", "--model", "judge")
    pack(rollouts, vllm_dir, "--target", "vllm", "--model", "judge")
    with run_emulator(*FAST) as url:
        common = ["--base-url", f"{url}/v1", "--model", "judge", "--check-interval", "0.01", "--no-progress"]
        for batch_dir in (azure_dir, vllm_dir):  # both run on an OpenAI endpoint, which takes only /v1
            done = run_script("batch_processor.py", "--batch-dir", str(batch_dir), *common)
            assert done.returncode == 0, done.stderr
        stats = get_stats(url, with_keys=False)["batch"]
    assert stats["lines_answered"] == 4
    (submitted,) = (azure_dir / "submit").glob("*.jsonl")  # the azure file: only its url changed
    rewritten = read_jsonl(submitted)
    assert [line["url"] for line in rewritten] == ["/v1/chat/completions"] * 2
    assert [{**line, "url": None} for line in rewritten] == [{**line, "url": None} for line in packed]
    assert not (vllm_dir / "submit").exists()  # the vllm file is already what OpenAI takes: sent as packed


def test_prompt_file_is_sent_and_recorded_by_name_and_hash(tmp_path):
    import hashlib
    rollouts = make_rollouts(tmp_path / "in", questions=2, per_question=1, seed=23)
    template = tmp_path / "my_judge.txt"
    template.write_text("Check every step and end with <conclusion>Correct</conclusion> or "
                        "<conclusion>Incorrect</conclusion>.\nQUESTION: {{question}}\nSOLUTION:\n{{solution}}\n")
    batch_dir = tmp_path / "batches"
    lines = pack(rollouts, batch_dir, "--target", "openai", "--model", "judge", "--prompt-file", str(template))
    assert all(line["body"]["messages"][0]["content"][0]["text"].startswith("Check every step") for line in lines)
    manifest = json.loads((batch_dir / "manifest.json").read_text())
    digest = hashlib.sha256(template.read_bytes()).hexdigest()
    assert (manifest["prompt"], manifest["prompt_sha256"]) == ("my_judge.txt", digest)
    other = pack(rollouts, tmp_path / "builtin", "--target", "openai", "--model", "judge")
    assert other[0]["body"]["messages"][0]["content"][0]["text"] != lines[0]["body"]["messages"][0]["content"][0]["text"]
    # a folder packed with one template refuses another, so results of two prompts never mix
    mixed = run_script("merge_and_map_batch.py", "pack", "--rollouts", str(rollouts), "--out-dir", str(batch_dir),
                       "--model", "judge", "--target", "openai")
    assert mixed.returncode == 1 and "prompt_sha256" in mixed.stderr
    (tmp_path / "bad.txt").write_text("no placeholders here")
    bad = run_script("merge_and_map_batch.py", "pack", "--rollouts", str(rollouts), "--out-dir", str(tmp_path / "x"),
                     "--model", "judge", "--prompt-file", str(tmp_path / "bad.txt"))
    assert bad.returncode == 2 and "{{question}}" in bad.stderr
    with run_emulator(*FAST) as url:
        ran = process_batches(batch_dir, url, "judge")
    assert ran.returncode == 0, ran.stderr
    mapped = run_script("merge_and_map_batch.py", "map", "--rollouts", str(rollouts), "--results", str(batch_dir),
                        "--output", str(tmp_path / "v.jsonl"))
    assert mapped.returncode == 0, mapped.stderr
    assert {json.dumps(r["verification_prompt"], sort_keys=True) for r in read_jsonl(tmp_path / "v.jsonl")} == \
        {json.dumps({"name": "my_judge.txt", "sha256": digest}, sort_keys=True)}
