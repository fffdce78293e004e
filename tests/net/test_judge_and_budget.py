import pytest

from rollkit.answers.score_text import parse_judge_score
from rollkit.content.tokens import image_tokens
from rollkit.net.endpoints import EndpointConfigError, load_endpoints_toml, resolve_key
from rollkit.net.pacing import SAFETY, Meter, header_number, parse_reset
from rollkit.prompts import render
from rollkit.stages.rejection import select_best, sft_record


@pytest.mark.parametrize("text,score", [
    ("7", 7.0), ("Score: 7/10", 7.0), ("**8**", 8.0), ("Score: 6\nThe answer is mostly right.", 6.0),
    ("score = 9.5 because", 9.5), ("I give it 4/10.", 4.0), ("**Score**: 3", 3.0),
    ("I cannot rate this.", None), ("", None), (None, None), ("Score: 42", None),
])
def test_judge_scores_parse_or_are_null(text, score):
    assert parse_judge_score(text) == score


def test_selection_is_deterministic_and_respects_min_score():
    assert select_best(["a", "b", "c"], [5, 8, 8], None)["best_index"] == 1
    assert select_best(["a", "b"], [None, 3], 5)["selected"] is False
    assert select_best(["a", "b"], [None, None], None)["best_index"] is None


def test_sft_record_keeps_human_turns_and_images():
    record = {"entry_id": "e", "selected": True, "best_answer": "2", "images": ["x.jpg"],
              "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "old"}]}
    assert sft_record(record)["conversations"] == [{"from": "human", "value": "q"}, {"from": "gpt", "value": "2"}]
    assert sft_record({**record, "selected": False}) is None


def test_meter_paces_at_the_rate_it_was_told_and_waits_exactly():
    now = [0.0]
    meter = Meter("requests", 60, window=60, clock=lambda: now[0])  # a ceiling of 1 a second
    meter.take(meter.level())
    assert meter.wait_time(1) == pytest.approx(1.0)
    now[0] = 0.5
    assert meter.wait_time(1) == pytest.approx(0.5)


def test_meter_learns_limit_and_burst_from_openai_headers_and_the_server_wins():
    now = [0.0]
    meter = Meter("requests", 1200, window=60, clock=lambda: now[0])  # configured 2x too high
    mark = meter.take(1)
    meter.observe_limit(600)
    meter.observe_remaining(99, sent_at=0.0, mark=mark, cost=1)
    assert meter.per_minute() == pytest.approx(600 * SAFETY) and meter.source() == "headers"
    assert meter.capacity() == 100 and meter.level() == pytest.approx(99)


def test_meter_learns_the_refill_rate_from_remaining_readings_alone():
    now = [0.0]
    meter = Meter("requests", 0, window=60, clock=lambda: now[0])
    mark = meter.take(1)
    meter.observe_remaining(99, 0.0, mark, 1)  # at idle: the burst is 100
    for _ in range(95):
        mark = meter.take(1)
    meter.observe_remaining(4, 0.0, mark, 1)
    now[0] = 2.0  # 2 s later, 10 a second refilled 20, and we sent 5 more
    for _ in range(5):
        mark = meter.take(1)
    meter.observe_remaining(19, 2.0, mark, 1)
    assert meter.per_minute() == pytest.approx(600 * SAFETY, rel=0.01)
    assert meter.source() == "learned from remaining"


def test_unknown_header_values_are_never_limits():
    assert header_number({"x": "-1"}, "x") is None and header_number({"x": "0"}, "x") is None
    assert header_number({}, "x") is None and header_number({"x": "12"}, "x") == 12


def test_without_headers_the_rate_comes_from_429s():
    now = [0.0]
    meter = Meter("requests", 0, window=60, adaptive=True, clock=lambda: now[0])
    for _ in range(20):  # 10 answers a second for 2 s, unpaced: no 429 yet
        now[0] += 0.1
        meter.observe_success()
    assert meter.per_minute() is None
    delivered = 20 / 1.9 * 60  # per minute, from the first answer to the last
    meter.observe_429(sent_at=now[0], pause=1.0)
    assert meter.per_minute() == pytest.approx(delivered / 2) and meter.source() == "learned from 429s"
    meter.observe_429(sent_at=now[0] - 1.0, pause=1.0)  # sent before the decrease: no news
    assert meter.per_minute() == pytest.approx(delivered / 2)


def test_reset_header_formats():
    assert parse_reset("6m0s") == 360
    assert parse_reset("120ms") == pytest.approx(0.12)
    assert parse_reset("1.5s") == 1.5
    assert parse_reset(None) is None


def test_image_tile_rule_matches_openai_examples():
    assert image_tokens(1024, 1024) == 765
    assert image_tokens(2048, 4096) == 1105
    assert image_tokens(4096, 8192, "low") == 85


def test_endpoint_file_errors_name_the_file(tmp_path, monkeypatch):
    path = tmp_path / "e.toml"
    path.write_text('[[endpoint]]\nname="a"\nkind="azure"\nbase_url="https://x"\ndeployment="d"\nkey_env="K1"\n')
    [endpoint] = load_endpoints_toml(path)
    monkeypatch.delenv("K1", raising=False)
    with pytest.raises(EndpointConfigError, match="K1 is not set"):
        resolve_key(endpoint)
    monkeypatch.setenv("K1", "secret-value-123")
    assert "secret-value-123" not in repr(resolve_key(endpoint))
    path.write_text('[[endpoint]]\nkind="bogus"\nbase_url="https://x"\n')
    with pytest.raises(EndpointConfigError, match="e.toml endpoint 1"):
        load_endpoints_toml(path)


def test_templates_substitute_once():
    text = render("score_candidate", question="{{candidate}}", reference="r", candidate="c")
    assert "{{candidate}}" in text and "scale from 0 to 10" in text


def test_encodings_by_model_match_tiktoken_ids():
    from rollkit.content.tokens import encoding_for

    # tiktoken's published ids for "hello world" in each encoding
    assert encoding_for("gpt-4").encode("hello world") == [15339, 1917]
    assert encoding_for("gpt-4.1").encode("hello world") == [24912, 2375]
    assert encoding_for("my-azure-deployment").name == "o200k_base"


def test_a_reply_with_n_choices_is_judged_choice_by_choice():
    from rollkit.net.client import result_from_response

    reply = {"model": "m", "choices": [
        {"index": 0, "message": {"content": "fine"}, "finish_reason": "stop"},
        {"index": 1, "message": {"content": "cut"}, "finish_reason": "length"},
        {"index": 2, "message": {"content": None}, "finish_reason": "content_filter"}]}
    parts = result_from_response(reply, per_choice=True).split(4)
    # issue 15: an answer cut off at the budget is still an answer, kept with its finish reason
    assert [p.ok for p in parts] == [True, True, False, False]
    assert [p.reason for p in parts] == [None, None, "content_filter", "n_ignored"]
    assert parts[1].text == "cut" and parts[1].finish_reasons == ["length"]
    refused = result_from_response({"choices": [{"index": 0, "finish_reason": "content_filter", "message": {}}]},
                                   per_choice=True)
    assert [p.reason for p in refused.split(2)] == ["content_filter", "content_filter"]


def test_a_burst_of_one_never_waits_for_more_than_it_holds():
    now = [0.0]
    meter = Meter("requests", 0, window=60, adaptive=True, clock=lambda: now[0])
    meter.observe_429(sent_at=0.0, pause=0.0)  # rate 0.5/s: a burst of one request
    now[0] = 10.0
    assert meter.capacity() == 1 and meter.wait_time(1) == 0
