"""Helpers the batch tests share: synthetic rollouts with known verdicts, packing and processing them, reading ledgers."""

from __future__ import annotations

import json
import random
import subprocess
from collections import Counter
from pathlib import Path

from PIL import Image

from rollkit.emulator import first_wrong_step, truth_for_question
from rollkit.emulator.answers import boxed_answer, normalize_answer
from rollkit.emulator.policy import continue_solution
from rollkit.emulator.steps_text import parse_steps
from tests.support import FIXTURES, ROOT, read_jsonl, run_script

FIXTURE_ROLLOUTS = FIXTURES / "rollouts_gpt-4.1.jsonl"


FIXTURE_VERIFICATIONS = FIXTURES / "verification_o4-mini.json"


FIXTURE_BATCH_LINES = FIXTURES / "batch_requests_sample.jsonl"


PACK = str(ROOT / "merge_and_map_batch.py")


def make_rollouts(folder: Path, questions: int, per_question: int = 2, seed: int = 0,
                  name: str = "rollouts.jsonl") -> Path:
    """Rollouts in the seed's shape (no rollout_id), written by the emulator's own policy, so the
    emulator judge's verdict is known: see `expected_verdict`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(exist_ok=True)
    rng = random.Random(seed)
    path = folder / name
    with open(path, "w", encoding="utf-8") as out:
        for q in range(questions):
            image = f"images/img_{seed}_{q}.png"
            size = rng.choice([(64, 48), (900, 700), (1500, 400)])
            Image.new("RGB", size, (q * 7 % 256, 80, 160)).save(folder / image)
            question = f"How many boats are at the pier in picture {seed}-{q}?"
            for _ in range(per_question):
                response = continue_solution(rng, "", truth_for_question(question), 0.5)
                out.write(json.dumps({"image": image, "question": question, "uid": f"u{seed}-{q}",
                                      "answer": truth_for_question(question), "response": response}) + "\n")
    return path


def expected_verdict(record: dict) -> tuple[bool, int | None]:
    """(conclusion, first wrong step 0-based) the emulator judge gives this rollout."""
    response = record["response"]
    first = first_wrong_step(response)
    boxed = boxed_answer(response)
    if first is None and normalize_answer(boxed or "") != normalize_answer(truth_for_question(record["question"])):
        first = len(parse_steps(response).combined) - 1
    return first is None, first


FAST = ["--batch-time-scale", "0.05", "--judge-garbage", "0"]


def pack(rollouts: Path, out: Path, model: str = "dep-a", lines: int = 5) -> dict:
    done = run_script("merge_and_map_batch.py", "pack", "--rollouts", str(rollouts), "--out-dir", str(out),
                      "--model", model, "--max-lines", str(lines), "--max-completion-tokens", "512")
    assert done.returncode == 0, done.stderr
    return json.loads((out / "manifest.json").read_text())


def process_batches(batch_dir: Path, url: str, model: str) -> subprocess.CompletedProcess:
    """batch_processor.py on one OpenAI-shaped emulator, checking every 0.6 s."""
    return run_script("batch_processor.py", "--batch-dir", str(batch_dir), "--base-url", f"{url}/v1",
                      "--model", model, "--check-interval", "0.01", "--no-progress")


def ledger_events(batch_dir: Path) -> list[dict]:
    return [e for path in sorted((batch_dir / "ledger").glob("*.jsonl")) for e in read_jsonl(path)]


def created_by_endpoint(batch_dir: Path) -> dict[str, Counter]:
    """endpoint -> Counter of input sha256 over the batches the ledgers say were created."""
    submits = {e["attempt"]: e for e in ledger_events(batch_dir) if e["kind"] == "submit"}
    out: dict[str, Counter] = {}
    for event in ledger_events(batch_dir):
        if event["kind"] == "created":
            submit = submits[event["attempt"]]
            out.setdefault(submit["endpoint"], Counter())[submit["sha256"]] += 1
    return out


def endpoints_toml(path: Path, urls: dict[str, str]) -> Path:
    path.write_text(f"""
[[endpoint]]
name = "a"
kind = "azure"
base_url = "{urls['a']}"
deployment = "dep-a"
key_env = "KEY_A"

[[endpoint]]
name = "b"
kind = "azure"
base_url = "{urls['b']}"
deployment = "dep-b"
key_env = "KEY_B"
enqueued_tokens = 10_000_000  # more than the service allows: its refusals must be handled

[[endpoint]]
name = "c"
kind = "openai"
base_url = "{urls['c']}/v1"
model = "dep-c"
key_env = "KEY_C"
""")
    return path


def body(text: str | None, finish: str = "stop", model: str = "o4-mini-2025-04-16", **choice_extra) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish, **choice_extra}
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": model, "choices": [choice]}


def ok_line(custom_id: str, text: str, **extra) -> dict:
    return {"id": "batch_req_1", "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": "r", "body": body(text, **extra)}, "error": None}
