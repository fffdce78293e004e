"""prm-score against the emulator's PRM: step scores known by construction, both modes, resumes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rollkit.emulator import prm as emulated
from rollkit.emulator.testing import run_emulator
from rollkit.stages.prm_conversation import conversation
from tests.support import read_jsonl, run_script
from tests.support.prm import rollout_record, solution, write_jsonl

SCRIPT = "rollkit/cli/prm_score.py"


@pytest.fixture(scope="module")
def url():
    with run_emulator("--seed", "3", "--no-auth") as base:
        yield base


def rollouts(tmp_path, count=6):
    rng = random.Random(5)
    records = []
    for i in range(count):
        first = [None, 0, 2, 3, None, 1][i % 6]
        steps = solution(rng, first, "4")
        records.append(rollout_record(f"How many buses are there? ({i})", "4", steps, first is None, f"r{i}"))
    return write_jsonl(tmp_path / "rollouts.jsonl", records), records


def expected(record: dict) -> list[float]:
    """The emulator's P(good) per step: keyed by the user turn holding it."""
    steps = [s["step"] for s in record["steps_with_score"]]
    messages = conversation(record, steps, "sys", emulated_tokens(), [])
    users = [m["content"] for m in messages if m["role"] == "user"]
    return [emulated.p_good(text, 3) for text in users]


def emulated_tokens():
    from rollkit.content.prm_turns import StepTokens
    return StepTokens()


def score(url, tmp_path, name, *flags):
    out = tmp_path / f"{name}.jsonl"
    done = run_script(SCRIPT, "--input", str(tmp_path / "rollouts.jsonl"), "--output", str(out),
                      "--model", "tiny-prm", "--base-url", url + "/v1", "--text-only", *flags)
    return done, out


def test_one_request_gives_the_emulated_probabilities(url, tmp_path):
    _, records = rollouts(tmp_path)
    done, out = score(url, tmp_path, "one", "--prm-mode", "one-request")
    assert done.returncode == 0, done.stderr
    rows = {r["prm_id"]: r for r in read_jsonl(out)}
    assert len(rows) == len(records)
    reasked = 0
    for record in records:
        row = rows[record["rollout_id"]]
        assert row["prm_mode"] == "one-request"
        assert row["prm_step_scores"] == pytest.approx(expected(record), abs=1e-9)
        assert row["prm_score"] == pytest.approx(min(row["prm_step_scores"]))
        assert row["prm_step_bounds"] == {}
        reasked += sum(p == emulated.SURE for p in expected(record))
    assert reasked > 0  # sure steps put the bad token outside the top 20: asked again, exactly
    again, _ = score(url, tmp_path, "one", "--prm-mode", "one-request")
    assert "6 already done" in again.stderr


def test_per_step_agrees_and_bounds_what_it_cannot_see(url, tmp_path):
    _, records = rollouts(tmp_path)
    done, out = score(url, tmp_path, "per", "--prm-mode", "per-step", "--aggregate", "prod")
    assert done.returncode == 0, done.stderr
    rows = {r["prm_id"]: r for r in read_jsonl(out)}
    bounded = 0
    for record in records:
        row, truth = rows[record["rollout_id"]], expected(record)
        for i, (got, want) in enumerate(zip(row["prm_step_scores"], truth, strict=True)):
            if want == emulated.SURE:  # the bad token is below the 20 fillers: a lower bound, honestly
                low, high = row["prm_step_bounds"][str(i)]
                assert low == got and high == 1.0 and low <= want
                bounded += 1
            else:
                assert got == pytest.approx(want, abs=1e-9)
        assert row["prm_score"] == pytest.approx(float(__import__("math").prod(row["prm_step_scores"])))
    assert bounded > 0


def test_auto_falls_back_to_per_step_without_prompt_logprobs(tmp_path):
    rollouts(tmp_path)
    with run_emulator("--seed", "3", "--no-auth", "--prm-no-prompt-logprobs") as base:
        done, out = score(base, tmp_path, "auto", "--prm-mode", "auto")
    assert done.returncode == 0, done.stderr
    assert {r["prm_mode"] for r in read_jsonl(out)} == {"per-step"}


def test_bad_input_is_named_by_file_and_line(url, tmp_path):
    records = [{"question": "q1", "answer": "4", "response": "no steps here at all"},
               {"question": "q2", "answer": "4", "generated_answers": ["free text", "more free text"]}]
    path = write_jsonl(tmp_path / "rollouts.jsonl", records)
    done, out = score(url, tmp_path, "bad")
    assert done.returncode == 1, done.stderr  # nothing written: exit 1, naming the commonest reason
    errors = read_jsonl(tmp_path / "bad.jsonl.errors.jsonl")
    assert [(e["reason"], e["line"]) for e in errors] == [("no_steps", 1), ("no_steps", 2)]
    assert errors[0]["message"].startswith(f"{path}:1: the solution has no steps")
    assert "candidates [0, 1]" in errors[1]["message"] and "--step-split" in errors[1]["message"]
    # free text split by a regex is scored
    done, out = score(url, tmp_path, "split", "--step-split", r"(?<=\.)\s+")
    assert done.returncode == 0, done.stderr
    rows = {r["question"]: r for r in read_jsonl(out)}
    assert len(rows["q1"]["prm_step_scores"]) == 1 and isinstance(rows["q1"]["prm_score"], float)
    assert [len(s) for s in rows["q2"]["prm_step_scores"]] == [1, 1] and len(rows["q2"]["prm_score"]) == 2
    saved = json.loads(Path(f"{out}.config.json").read_text())  # flags as typed: the run can be read back
    assert saved["step_split"] == r"(?<=\.)\s+" and saved["step_tokens"] == "+,-"


def test_a_server_without_logprobs_stops_the_run_naming_the_record(tmp_path):
    rollouts(tmp_path)
    with run_emulator("--seed", "3", "--no-auth", "--prm-no-logprobs") as base:
        done, _ = score(base, tmp_path, "nolog", "--prm-mode", "per-step", "--concurrency", "1")
    assert done.returncode == 2
    assert f"{tmp_path / 'rollouts.jsonl'}:1: tiny-prm: the server returned no top_logprobs" in done.stderr


def test_step_tokens_that_are_not_single_tokens_are_named(url, tmp_path):
    rollouts(tmp_path)
    done, _ = score(url, tmp_path, "split-token", "--prm-mode", "one-request", "--step-tokens", "<+>,<->",
                    "--concurrency", "1")
    assert done.returncode == 2
    assert "step token '<+>' is not a single token in the model's vocabulary" in done.stderr
