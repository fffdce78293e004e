"""`merge_and_map_batch.py map`: result formats, verdict parsing, the join, and what is reported."""

from __future__ import annotations

import json

import pytest

from rollkit.batch.mapping import map_results
from rollkit.batch.results import ResultIndex, classify_line
from rollkit.batch.verdicts import parse_conclusion, parse_verdict
from tests.support import read_jsonl, run_script
from tests.support.batch import FIXTURE_ROLLOUTS, FIXTURE_VERIFICATIONS, ok_line

VERIFICATIONS = json.loads(FIXTURE_VERIFICATIONS.read_text())




@pytest.mark.parametrize("record", VERIFICATIONS, ids=lambda r: r["custom_id"][:8])
def test_real_verifications_conclude_correct_with_no_wrong_step(record):
    verdict = parse_verdict(record["verification_response"])
    assert (verdict.conclusion, verdict.first_incorrect_step) == (True, None)


def test_the_fixture_verifications_map_onto_rollouts(tmp_path):
    rollouts = read_jsonl(FIXTURE_ROLLOUTS)[:6]
    for rollout, verification in zip(rollouts, VERIFICATIONS, strict=True):
        rollout["rollout_id"] = verification["custom_id"]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rollouts))
    done = run_script("merge_and_map_batch.py", "map", "--rollouts", str(tmp_path / "r.jsonl"),
                      "--results", str(FIXTURE_VERIFICATIONS), "--output", str(tmp_path / "out.jsonl"),
                      "--verification-model", "o4-mini")
    assert done.returncode == 0, done.stderr
    assert "mapped 6 rollouts: ok 6" in done.stdout
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [r["conclusion"] for r in out] == [True] * 6
    assert all(r["verification_model"] == "o4-mini" and r["judge_first_incorrect_step"] is None for r in out)
    assert all(set(rollouts[0]) <= set(r) for r in out)  # every input field is kept


JUDGE_INCORRECT = """[Visual Elements]
<analysis_1>
Right.
Verdict: correct
</analysis_1>
<analysis_2>
Right.
Verdict: correct
</analysis_2>

[Reasoning]
<analysis_1>
Right.
Verdict: correct
</analysis_1>
<analysis_2>
The count includes a hidden boat.
Verdict: incorrect
</analysis_2>

<conclusion>
Incorrect
</conclusion>"""


def test_first_incorrect_step_from_verdict_lines_or_from_where_the_judge_stopped():
    verdict = parse_verdict(JUDGE_INCORRECT, perception_steps=2)
    assert verdict.conclusion is False
    assert verdict.first_incorrect_step == {"section": "reasoning", "index": 2, "step": 3}
    stopped = JUDGE_INCORRECT.replace("Verdict: correct\n", "").replace("Verdict: incorrect\n", "")
    assert parse_verdict(stopped, perception_steps=2).first_incorrect_step["step"] == 3
    perception = "[Visual Elements]\n<analysis_1>\nThere is no dog.\n</analysis_1>\n<conclusion>Incorrect</conclusion>"
    assert parse_verdict(perception).first_incorrect_step == {"section": "perception", "index": 1, "step": 0}
    assert parse_verdict(stopped).first_incorrect_step["step"] is None  # perception count unknown
    assert parse_verdict("<analysis_1>\nfine\n</analysis_1>").first_incorrect_step is None


@pytest.mark.parametrize("text,expected", [
    ("<conclusion>\nCorrect\n</conclusion>", True), ("<conclusion>Incorrect</conclusion>", False),
    ("<conclusion>**Correct**</conclusion>", True), ("<conclusion>Incorrect.</conclusion>", False),
    ("<conclusion>Partly correct</conclusion>", None), ("Conclusion: Correct", None),
    ("<conclusion>Correct", None), (None, None),
    ("<conclusion>Correct</conclusion> on reflection <conclusion>Incorrect</conclusion>", False),
])
def test_conclusion_is_null_unless_the_judge_followed_the_format(text, expected):
    assert parse_conclusion(text) is expected


@pytest.mark.parametrize("line,status,reason", [
    (ok_line("a", "x"), "ok", None),
    (ok_line("a", None, finish="content_filter", content_filter_results={"hate": {"filtered": True}}),
     "refused", "content_filter (hate)"),
    (ok_line("a", "", finish="length"), "failed", "empty reply (finish_reason=length)"),
    ({"custom_id": "a", "response": {"status_code": 400, "body": {"error": {
        "code": "content_filter", "innererror": {"content_filter_result": {"violence": {"filtered": True}}}}}},
      "error": None}, "refused", "content_filter (violence)"),
    ({"custom_id": "a", "response": {"status_code": 400, "body": {"error": {"code": "invalid_value"}}}, "error": None},
     "failed", "http_400: invalid_value"),
    ({"custom_id": "a", "response": {"status_code": 500, "body": {"error": {"type": "server_error"}}}, "error": None},
     "retry", "http_500"),
    ({"id": "b", "custom_id": "a", "response": None, "error": {"code": "batch_expired", "message": "..."}},
     "retry", "batch_expired"),
    ({"custom_id": "a", "response": None, "error": {"code": "batch_cancelled"}}, "retry", "batch_cancelled"),
    ({"id": "vllm-1", "custom_id": "a", "response": {"status_code": 400, "request_id": "x", "body": None},
      "error": "URL /v1/x was used"}, "failed", "http_400: URL /v1/x was used"),
    ({"custom_id": "a", "verification_response": "<conclusion>Correct</conclusion>"}, "ok", None),
])
def test_every_result_shape_is_classified(line, status, reason):
    result = classify_line(line)
    assert (result.custom_id, result.status, result.reason) == ("a", status, reason)


def test_map_joins_by_custom_id_and_reports_what_has_no_result(tmp_path):
    rollouts = [{"rollout_id": f"r{i}", "question": f"q{i}?", "response": "[Reasoning]\n<step_1>\ns\n</step_1>\n"
                 "<correct_answer>\n$\\boxed{1}$\n</correct_answer>"} for i in range(5)]
    (tmp_path / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rollouts))
    first = tmp_path / "results" / "b1.output.jsonl"
    first.parent.mkdir()
    expired = {"custom_id": "r0", "response": None, "error": {"code": "batch_expired"}}
    first.write_text("\n".join(json.dumps(x) for x in (
        expired, ok_line("r1", "no verdict here", finish="length"),
        {"custom_id": "r2", "response": {"status_code": 400, "body": {"error": {"code": "content_filter"}}}},
        ok_line("r3", "<analysis_1>\nbad\n</analysis_1>\n<conclusion>Incorrect</conclusion>"))) + "\n")
    (tmp_path / "results" / "b2.output.jsonl").write_text(
        json.dumps(ok_line("r0", "<conclusion>Correct</conclusion>")) + "\n" + json.dumps(expired) + "\n")
    report = map_results([tmp_path / "rollouts.jsonl"], [tmp_path / "results"], tmp_path / "out.jsonl")
    out = {r["rollout_id"]: r for r in read_jsonl(tmp_path / "out.jsonl")}
    assert [out[f"r{i}"]["verification_status"] for i in range(5)] == \
        ["ok", "no_conclusion", "refused", "ok", "pending"]
    assert out["r0"]["conclusion"] is True  # a good result wins over an error before or after it
    assert "cut off" in out["r1"]["verification_error"] and out["r1"]["conclusion"] is None
    assert out["r2"]["verification_error"] == "content_filter"
    assert out["r3"]["judge_first_incorrect_step"] == {"section": "reasoning", "index": 1, "step": 0}
    assert report.pending_ids == ["r4"] and "no result yet for 1 rollouts: r4" in report.summary()


def test_result_index_reads_replies_back_from_disk(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("".join(json.dumps(ok_line(f"id{i}", f"reply {i} " + "x" * 70_000)) + "\n" for i in range(50)))
    index = ResultIndex([path])
    assert index.get("id37").text.startswith("reply 37 ") and index.get("missing") is None
    assert len(index.inline) == 0 and index.table.memory_bytes() < 50_000


def test_the_monte_carlo_first_incorrect_step_is_kept(tmp_path):
    rollout = {"rollout_id": "r0", "question": "q?", "first_incorrect_step": 2,
               "response": "[Reasoning]\n<step_1>\ns\n</step_1>\n<correct_answer>\n$\\boxed{1}$\n</correct_answer>"}
    (tmp_path / "r.jsonl").write_text(json.dumps(rollout) + "\n")
    (tmp_path / "res.jsonl").write_text(json.dumps(ok_line("r0", "<conclusion>Correct</conclusion>")) + "\n")
    map_results([tmp_path / "r.jsonl"], [tmp_path / "res.jsonl"], tmp_path / "out.jsonl")
    (out,) = read_jsonl(tmp_path / "out.jsonl")
    assert (out["first_incorrect_step"], out["judge_first_incorrect_step"], out["conclusion"]) == (2, None, True)
    assert "mc_first_incorrect_step" not in out
