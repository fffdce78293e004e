"""Monte-Carlo scoring pieces in process: the search, the filling, request bodies, units in the runner."""

from __future__ import annotations

import asyncio
import math

import pytest

from rollkit.content.inputs import InputItem
from rollkit.content.steps import parse_solution
from rollkit.net.client import ChatResult, result_from_response
from rollkit.net.endpoints import Endpoint
from rollkit.stages.montecarlo import (
    ProbeFailed,
    RolloutParams,
    StepCount,
    StepScorer,
    continuation_messages,
    fill_scores,
    first_zero_step,
    generation_request,
    probe_requests,
    rollout_units,
    score_binary_search,
    score_exhaustive,
    split_rollout_id,
    usage_share,
)
from rollkit.stages.runner import Outcome, StageRunner
from rollkit.store.result_log import ErrorLog, ResultLog

EID = "0123456789abcdef0123456789abcdef"
MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "<question>\nHow many?\n</question>"}]}]


def fake_measure(first_zero: int | None, probed: list[int]):
    async def measure(step: int) -> StepCount:
        probed.append(step)
        return StepCount(0 if first_zero is not None and step >= first_zero else 3, 4)
    return measure


@pytest.mark.parametrize("n_steps", [1, 2, 3, 5, 8, 13])
def test_binary_search_finds_the_first_zero_in_log_probes(n_steps):
    for first_zero in range(n_steps):
        probed: list[int] = []
        counts, found = asyncio.run(score_binary_search(fake_measure(first_zero, probed), n_steps, False))
        assert found == first_zero
        assert len(probed) == len(set(probed)) <= math.ceil(math.log2(n_steps)) if n_steps > 1 else not probed
        filled = fill_scores([f"s{i}" for i in range(n_steps)], counts, found)
        assert first_zero_step(filled) == first_zero
        assert [s["measured"] for s in filled] == [i in probed for i in range(n_steps)]
        assert all(s["score"] > 0 for s in filled[:first_zero]) and all(s["score"] == 0 for s in filled[first_zero:])


def test_a_correct_rollout_needs_no_probe_and_exhaustive_measures_all():
    probed: list[int] = []
    counts, found = asyncio.run(score_binary_search(fake_measure(None, probed), 6, True))
    assert (counts, found, probed) == ({}, None, [])
    filled = fill_scores(list("abcdef"), counts, found)
    assert [s["score"] for s in filled] == [1.0] * 6 and not any(s["measured"] for s in filled)
    counts, found = asyncio.run(score_exhaustive(fake_measure(2, probed), 4))
    assert found == 2 and sorted(probed) == [0, 1, 2, 3]
    assert [s["score"] for s in fill_scores(list("abcd"), counts, found)] == [0.75, 0.75, 0.0, 0.0]


def test_unmeasured_steps_take_the_next_measured_score():
    counts = {1: StepCount(1, 4), 3: StepCount(2, 4), 4: StepCount(0, 4)}
    filled = fill_scores(list("abcdef"), counts, 4)
    assert [s["score"] for s in filled] == [0.25, 0.25, 0.5, 0.5, 0.0, 0.0]
    assert [s["num_mc_total"] for s in filled] == [0, 4, 0, 4, 4, 0]


def test_usage_shares_add_up_exactly():
    usage = {"prompt_tokens": 1001, "completion_tokens": 7}
    shares = [usage_share(usage, k, 4) for k in range(4)]
    assert sum(s["prompt_tokens"] for s in shares) == 1001 and sum(s["completion_tokens"] for s in shares) == 7
    assert usage_share(None, 0, 1) == {"prompt_tokens": 0, "completion_tokens": 0}


def test_request_bodies_are_deterministic_and_shaped_by_n():
    with_n, without_n = RolloutParams("m", num_rollouts=3, num_mc=5), RolloutParams("m", 3, 5, use_n=False)
    generation = [generation_request(MESSAGES, EID, k, with_n) for k in range(3)]
    assert {g.body["n"] for g in generation} == {3} and [g.choice for g in generation] == [0, 1, 2]
    assert generation[0].body == generation[2].body  # one request for the K rollouts
    separate = [generation_request(MESSAGES, EID, k, without_n) for k in range(3)]
    assert len({s.body["seed"] for s in separate}) == 3 and all("n" not in s.body for s in separate)
    probes = probe_requests(MESSAGES, "[Visual Elements]\n<step_1>\nA.\n</step_1>\n", EID, with_n)
    assert len(probes) == 1 and probes[0].body["n"] == 5
    assert probes == probe_requests(MESSAGES, "[Visual Elements]\n<step_1>\nA.\n</step_1>\n", EID, with_n)
    assert len(probe_requests(MESSAGES, "p", EID, without_n)) == 5
    continued = continuation_messages(MESSAGES, "prefix")
    assert continued[-1] == {"role": "assistant", "content": "prefix"}
    assert continued[0]["content"][0] == MESSAGES[0]["content"][0]  # the prompt stays a common prefix
    assert MESSAGES[0]["content"] == [MESSAGES[0]["content"][0]]  # not modified in place


def test_local_endpoints_continue_the_final_message():
    body = {"model": "m", "messages": continuation_messages(MESSAGES, "prefix")}
    local = Endpoint("l", "local", "http://127.0.0.1:1/v1", "m").shape_body(body)
    assert local["continue_final_message"] is True and local["add_generation_prompt"] is False
    for kind in ("openai", "azure"):
        shaped = Endpoint("o", kind, "https://x", "m", deployment="d").shape_body(body)
        assert "continue_final_message" not in shaped and shaped["messages"][-1]["role"] == "assistant"
    plain = Endpoint("l", "local", "http://127.0.0.1:1/v1", "m").shape_body({"messages": MESSAGES})
    assert "continue_final_message" not in plain


def test_per_choice_results_keep_cut_off_samples():
    reply = {"choices": [{"index": 0, "message": {"content": "a"}, "finish_reason": "stop"},
                         {"index": 1, "message": {"content": "b"}, "finish_reason": "length"}]}
    # issue 15: a cut-off sibling no longer fails the reply; the finish reason says what it was
    assert result_from_response(reply).ok and result_from_response(reply).finish_reasons == ["stop", "length"]
    assert result_from_response(reply, per_choice=True).ok
    filtered = {"choices": [{"index": 0, "message": {"content": None}, "finish_reason": "content_filter"}]}
    assert result_from_response(filtered, per_choice=True).reason == "content_filter"


def test_runner_writes_and_resumes_each_unit(tmp_path):
    output = tmp_path / "out.jsonl"
    item = InputItem("q.jsonl", 1, {"question": "How many?", "answer": "2"})
    calls: list[str] = []

    async def process(item, unit):
        calls.append(unit)
        if unit.endswith(":r1") and len(calls) <= 3:
            return Outcome(error_reason="content_filter", message="filtered")
        return Outcome(record={"k": split_rollout_id(unit)[1]})

    def run(retry_failed: bool = False) -> None:
        runner = StageRunner("t", output, concurrency=2, units=rollout_units(3), id_field="rollout_id",
                             retry_failed=retry_failed).open()
        try:
            asyncio.run(runner.run([item], process))
        finally:
            runner.close()

    run()
    assert sorted(u[-2:] for u in calls) == ["r0", "r1", "r2"]
    with ResultLog(output, id_field="rollout_id") as log:
        records = list(log.iter_records())
    assert sorted(r["k"] for r in records) == [0, 2] and len({r["entry_id"] for r in records}) == 1
    with ErrorLog(f"{output}.errors.jsonl") as errors:
        [error] = list(errors.iter_records())
    assert error["error_key"] == error["rollout_id"] == f"{records[0]['entry_id']}:r1"
    assert error["entry_id"] == records[0]["entry_id"] and error["reason"] == "content_filter"
    run()
    assert len(calls) == 3  # finished and failed units are not redone
    run(retry_failed=True)
    assert calls[3:] == [f"{records[0]['entry_id']}:r1"]


def test_exhaustive_waits_for_every_probe_then_reports_the_failure():
    probed: list[int] = []

    async def measure(step: int) -> StepCount:
        probed.append(step)
        if step == 1:
            raise ProbeFailed("server_error", "continuations after step 2: HTTP 500")
        await asyncio.sleep(0.01)
        return StepCount(1, 2)

    with pytest.raises(ProbeFailed, match="step 2"):
        asyncio.run(score_exhaustive(measure, 4))
    assert sorted(probed) == [0, 1, 2, 3]


class FakeCalls:
    """Stands in for SharedCalls: answers every probe with the given choices."""

    def __init__(self, *choices: tuple[str, str]) -> None:
        self.choices = choices

    async def complete(self, request):
        texts, reasons = zip(*self.choices, strict=True)
        return ChatResult(True, list(texts), list(reasons), usage={"prompt_tokens": 10, "completion_tokens": 3})


def scorer(calls, num_mc: int) -> StepScorer:
    solution = parse_solution("<step_1>a</step_1>\n<correct_answer>$\\boxed{2}$</correct_answer>")
    return StepScorer(calls, RolloutParams("m", num_mc=num_mc), MESSAGES, solution, EID, ["2"])


def test_a_cut_off_continuation_counts_as_wrong_and_a_filtered_one_not_at_all():
    right = ("<correct_answer>$\\boxed{2}$</correct_answer>", "stop")
    wrong = ("<correct_answer>$\\boxed{3}$</correct_answer>", "stop")
    cut, filtered = ("<correct_answer>$\\boxed{2", "length"), ("", "content_filter")
    measuring = scorer(FakeCalls(right, right, wrong, cut, filtered), 5)
    assert asyncio.run(measuring.measure(0)) == StepCount(2, 4)
    assert (measuring.tally.requests, measuring.tally.continuations, measuring.tally.prompt_tokens) == (1, 4, 10)
    with pytest.raises(ProbeFailed, match="ignores n") as failure:
        asyncio.run(scorer(FakeCalls(right), 4).measure(0))
    assert failure.value.reason == "n_ignored"
