"""Helpers shared by the batch tests (no tests here): synthetic rollouts with known verdicts."""

from __future__ import annotations

import json
import random
from pathlib import Path

from conftest import FIXTURES, ROOT
from PIL import Image

from rollkit.emulator import first_wrong_step, truth_for_question
from rollkit.emulator.answers import boxed_answer, normalize_answer
from rollkit.emulator.policy import continue_solution
from rollkit.emulator.steps_text import parse_steps

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
