"""prm-score against the real vLLM: SmolLM2 stands in as a PRM (untrained, but its probabilities
are real). One request per solution (prompt_logprobs) and one per step prefix (top_logprobs) must
give the same step probabilities for the same conversations: the server is batch-invariant in
float32. Also pinned: the shape of `prompt_logprobs` the server returns, and that step tokens the
vocabulary splits are named."""

from __future__ import annotations

import json
import random

import pytest

from rollkit.content.prm_turns import StepTokens, system_prompt
from rollkit.stages.prm_conversation import conversation
from tests.real.server import SERVED_NAME
from tests.real.test_vllm_facts import post
from tests.support import read_jsonl, run_script
from tests.support.prm import rollout_record, solution, write_jsonl

pytestmark = pytest.mark.timeout(600)
STEPS = 8  # the bench's solution length
FLOAT32 = 2e-4  # two float32 forward passes of different lengths: the same numbers to about 1e-5


def rollouts(path, count=3):
    rng = random.Random(21)
    records = [rollout_record(f"How many boats are in the harbor? ({i})", "3",
                              solution(rng, [None, 3, 5][i % 3], "3", steps=STEPS), i % 3 == 0, f"real-{i}")
               for i in range(count)]
    return write_jsonl(path, records), records


def score(vllm, tmp_path, name, *flags):
    out = tmp_path / f"{name}.jsonl"
    done = run_script("rollkit/cli/prm_score.py", "--input", str(tmp_path / "rollouts.jsonl"), "--output",
                      str(out), "--model", SERVED_NAME, "--base-url", vllm.base_url, "--text-only", *flags,
                      timeout=600)
    return done, out


def test_prompt_logprobs_shape(vllm, tmp_path):
    """Recorded for real_servers.md: a list with one entry per prompt token, the first null, each
    a dict {token id: {"logprob", "rank", "decoded_token"}} whose first entry is the prompt token's
    own (rank its rank in the whole vocabulary), then the top k."""
    _, records = rollouts(tmp_path / "rollouts.jsonl", 1)
    steps = [s["step"] for s in records[0]["steps_with_score"]][:2]
    messages = conversation(records[0], steps, system_prompt(None, StepTokens()), StepTokens(), [])
    status, _, data = post(vllm.url, {"model": SERVED_NAME, "messages": messages, "max_tokens": 1,
                                      "temperature": 0, "prompt_logprobs": 2})
    assert status == 200, data
    positions = data["prompt_logprobs"]
    assert positions[0] is None and all(isinstance(p, dict) for p in positions[1:])
    assert data["usage"]["prompt_tokens"] == len(positions)
    for position in positions[1:]:
        entries = list(position.values())
        assert 2 <= len(entries) <= 3 and all(set(e) == {"logprob", "rank", "decoded_token"} for e in entries)
        ranks = [e["rank"] for e in entries]
        # the prompt token first; the top 2 after it, the one it is itself merged into its entry
        assert {1, 2} <= set(ranks) and len(entries) == (2 if ranks[0] <= 2 else 3)
    pluses = [p for p in positions[1:] if next(iter(p.values()))["decoded_token"] == "+"]
    assert len(pluses) >= 2  # the two assistant turns (the system prompt's "+" is in quotes: '"+')
    print(json.dumps(positions[-3:], indent=1))


def test_one_request_and_per_step_agree(vllm, tmp_path):
    rollouts(tmp_path / "rollouts.jsonl")
    one, one_out = score(vllm, tmp_path, "one", "--prm-mode", "one-request")
    per, per_out = score(vllm, tmp_path, "per", "--prm-mode", "per-step")
    assert one.returncode == 0, one.stderr[-3000:]
    assert per.returncode == 0, per.stderr[-3000:]
    ones = {r["prm_id"]: r for r in read_jsonl(one_out)}
    pers = {r["prm_id"]: r for r in read_jsonl(per_out)}
    assert len(ones) == len(pers) == 3
    compared = 0
    for key, row in ones.items():
        assert len(row["prm_step_scores"]) == STEPS and row["prm_mode"] == "one-request"
        assert all(isinstance(a, float) for a in row["prm_step_scores"])  # the re-ask makes each exact
        for i, (a, b) in enumerate(zip(row["prm_step_scores"], pers[key]["prm_step_scores"], strict=True)):
            bound = pers[key]["prm_step_bounds"].get(str(i))
            if bound is None:
                assert a == pytest.approx(b, abs=FLOAT32), (key, i)
                compared += 1
            else:  # untrained, SmolLM2 may put neither token in its top 20 (null, [0, 1]) or only one
                assert bound[0] - FLOAT32 <= a <= bound[1] + FLOAT32
                assert b is None or b in (pytest.approx(bound[0]), pytest.approx(bound[1]))
    assert compared >= 2 * STEPS
    summaries = [json.loads((tmp_path / f"{n}.jsonl.summary.json").read_text())["requests"] for n in ("one", "per")]
    assert summaries[1]["sent"] == 3 * STEPS and summaries[0]["sent"] < summaries[1]["sent"]


def test_step_tokens_the_vocabulary_splits_are_named(vllm, tmp_path):
    rollouts(tmp_path / "rollouts.jsonl", 1)
    done, _ = score(vllm, tmp_path, "split", "--prm-mode", "one-request", "--step-tokens", "<+>,<->")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "step token '<+>' is not a single token" in done.stderr
