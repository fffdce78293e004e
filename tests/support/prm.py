"""Solutions with planted first errors in the emulator's own wording (emulator/steps_text), so the
PRM emulator's scores and every evaluation figure are known by construction."""

from __future__ import annotations

import json
import random
from pathlib import Path

from rollkit.emulator.steps_text import StepWriter

STEPS = 4


def solution(rng: random.Random, first_error: int | None, answer: str, steps: int = STEPS) -> list[str]:
    """Step texts: good before `first_error`, bad from it on (None: all good); the last step concludes."""
    writer = StepWriter(rng)
    out = []
    for i in range(steps):
        bad = first_error is not None and i >= first_error
        final = answer if i == steps - 1 else None
        out.append(writer.step(reasoning=i >= steps // 2, bad=bad, final_answer=final))
    return out


def rollout_record(question: str, answer: str, steps: list[str], right: bool, rid: str) -> dict:
    return {"question": question, "answer": answer, "rollout_id": rid, "is_correct": right,
            "steps_with_score": [{"step": s, "score": 1.0, "num_mc_correct": 1, "num_mc_total": 1} for s in steps]}


def render(steps: list[str], answer: str) -> str:
    body = "".join(f"<step_{i}>\n{s}\n</step_{i}>\n" for i, s in enumerate(steps, 1))
    return f"[Perception]\n{body}<correct_answer>\n$\\boxed{{{answer}}}$\n</correct_answer>"


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
