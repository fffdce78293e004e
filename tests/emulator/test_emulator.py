"""The emulator over real HTTP on 127.0.0.1, against subprocesses started with `run_emulators`."""

from __future__ import annotations

import base64
import http.client
import io
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import bpe_openai
import openai
import pytest
from openai.types.chat import ChatCompletion
from PIL import Image

from rollkit.emulator import first_wrong_step, is_bad_step, request_key, truth_for_question
from rollkit.emulator.answers import boxed_answer, load_answer_key
from rollkit.emulator.judge_replies import score_from_reply
from rollkit.emulator.ratelimit import format_duration
from rollkit.emulator.steps_text import (
    BAD_PHRASE,
    PERCEPTION_BAD,
    PERCEPTION_GOOD,
    REASONING_BAD,
    REASONING_GOOD,
    parse_steps,
)
from rollkit.emulator.testing import get_stats, reset_stats, run_emulators
from rollkit.emulator.tokens import tile_count

pytestmark = pytest.mark.timeout(120)

KEY = "test-key"
CHAT = "/v1/chat/completions"
KNOWN_QUESTION = "How many buses are parked by the curb?"
KNOWN_ANSWER = "5"
UNKNOWN_QUESTION = "What number is painted on the door?"
ROLLOUT_PROMPT = (
    "You answer questions about images.\n\n<question>\n{q}\n</question>\n\n"
    "Answer under [Visual Elements] and [Reasoning] in <step_i> tags, then <correct_answer>."
)
STRUCTURE = re.compile(
    r"^\[Visual Elements\]\n(<step_(\d+)>\n[^\n]+\n</step_\2>\n){2,4}\n\[Reasoning\]\n"
    r"(<step_(\d+)>\n[^\n]+\n</step_\4>\n){2,4}\n<correct_answer>\n\$\\boxed\{[^}]+\}\$\n</correct_answer>$"
)
# One process per behaviour that needs its own flags; started together to share the start-up time.
SERVERS = {
    # + --answer-key, added by the fixture
    "main": ["--seed", "7", "--judge-garbage", "0", "--require-key", KEY],
    "limits": ["--rpm", "3", "--tpm", "3000", "--window-seconds", "1", "--burst-seconds", "60"],
    "429": ["--fault-429", "1", "--no-auth"],
    "500": ["--fault-500", "1"],
    "timeout": ["--fault-timeout", "1", "--timeout-sleep", "30"],
    "reset": ["--fault-reset", "1"],
    "malformed": ["--fault-malformed", "1"],
    "content-filter": ["--fault-content-filter", "1"],
    "length": ["--fault-length", "1", "--latency-ms", "200"],
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Any:
    key_file = tmp_path_factory.mktemp("emulator") / "answers.jsonl"
    key_file.write_text(json.dumps({"question": KNOWN_QUESTION, "answer": KNOWN_ANSWER}) + "\n")
    args = {name: list(a) for name, a in SERVERS.items()}
    args["main"] += ["--answer-key", str(key_file)]
    with run_emulators(*args.values()) as urls:
        yield dict(zip(args, urls, strict=True))


def post(base: str, body: Any, path: str = CHAT, headers: dict[str, str] | None = None,
         timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    url = urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}", **(headers or {})}
        conn.request("POST", path, body=data, headers={k: v for k, v in all_headers.items() if v is not None})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def chat(base: str, body: dict[str, Any], **kwargs: Any) -> ChatCompletion:
    status, _, raw = post(base, body, **kwargs)
    assert status == 200, raw
    return ChatCompletion.model_validate(json.loads(raw))


def rollout_body(question: str = KNOWN_QUESTION, seed: int = 0, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": ROLLOUT_PROMPT.format(q=question)}]
    return {"model": "gpt-4.1", "messages": messages, "seed": seed, **extra}


def assert_error_shape(raw: bytes, code: str | None = None) -> dict[str, Any]:
    error = json.loads(raw)["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    if code is not None:
        assert error["code"] == code
    return error


def truth(question: str = KNOWN_QUESTION) -> str:
    return KNOWN_ANSWER if question == KNOWN_QUESTION else truth_for_question(question)


def test_listening_line_and_loopback_only(servers: dict[str, str]) -> None:
    for url in servers.values():
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    refused = subprocess.run([sys.executable, "-m", "rollkit.emulator", "--host", "0.0.0.0"],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2
    assert "127.0.0.1" in refused.stderr and refused.stdout == ""


def test_generation_is_a_valid_structured_completion(servers: dict[str, str]) -> None:
    completion = chat(servers["main"], rollout_body(seed=1))
    assert completion.object == "chat.completion" and completion.model == "emulator/gpt-4.1"
    assert completion.system_fingerprint and completion.id
    (choice,) = completion.choices
    content = choice.message.content or ""
    assert choice.finish_reason == "stop" and STRUCTURE.match(content), content
    encoding = bpe_openai.get_encoding("o200k_base")
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(encoding.encode_ordinary(content))
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_same_body_same_answer_other_seed_other_answer(servers: dict[str, str]) -> None:
    first = chat(servers["main"], rollout_body(seed=3)).choices[0].message.content
    again = chat(servers["main"], rollout_body(seed=3)).choices[0].message.content
    others = {chat(servers["main"], rollout_body(seed=s)).choices[0].message.content for s in range(10, 15)}
    assert first == again
    assert len(others | {first}) >= 4


@pytest.mark.parametrize("question", [KNOWN_QUESTION, UNKNOWN_QUESTION])
def test_answers_follow_truth_and_first_wrong_step(servers: dict[str, str], question: str) -> None:
    right = 0
    for seed in range(30):
        content = chat(servers["main"], rollout_body(question, seed)).choices[0].message.content or ""
        steps = parse_steps(content).combined
        wrong_at = first_wrong_step(content)
        is_right = boxed_answer(content) == truth(question)
        right += is_right
        assert (wrong_at is None) == is_right
        if wrong_at is not None:  # good before f, bad from f on
            assert [is_bad_step(s) for s in steps] == [i >= wrong_at for i in range(len(steps))]
    assert 8 <= right <= 28  # p-correct 0.6 over 30 draws


def test_n_gives_n_choices(servers: dict[str, str]) -> None:
    completion = chat(servers["main"], rollout_body(seed=4, n=3))
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert len({c.message.content for c in completion.choices}) > 1


def test_a_seeded_n_request_draws_what_seed_plus_i_draws_alone(servers: dict[str, str]) -> None:
    # vLLM samples child i of a request with `seed` and `n` with seed + i; the emulator does too.
    together = chat(servers["main"], rollout_body(seed=40, n=4))
    alone = [chat(servers["main"], rollout_body(seed=40 + i)).choices[0].message.content for i in range(4)]
    assert [c.message.content for c in together.choices] == alone
    rounds = chat(servers["main"], rollout_body(seed=42, n=2))
    assert [c.message.content for c in rounds.choices] == alone[2:]


def scoring_body(reference: str | None, candidate: str | None, seed: int) -> dict[str, Any]:
    text = "Rate the candidate answer against the reference on a scale from 0 to 10.\n"
    if reference is not None:
        text += f"<reference_answer>{reference}</reference_answer>\n"
    if candidate is not None:
        text += f"<candidate_answer>{candidate}</candidate_answer>\n"
    return {"model": "judge", "messages": [{"role": "user", "content": text}], "seed": seed}


def test_scoring_replies(servers: dict[str, str]) -> None:
    high, low, shapes = [], [], set()
    for seed in range(12):
        for candidate, bucket in (("Counting gives\n$\\boxed{4}$", high), ("I think it is 5", low)):
            reply = chat(servers["main"], scoring_body("4", candidate, seed)).choices[0].message.content or ""
            score = score_from_reply(reply)
            assert score is not None, reply
            bucket.append(score)
            shapes.add(re.sub(r"\d+", "N", reply.splitlines()[0]))
    plain = chat(servers["main"], scoring_body(" Four ", "so the answer is four.", 0)).choices[0].message.content
    missing = chat(servers["main"], scoring_body("4", None, 0)).choices[0].message.content
    assert all(7 <= s <= 10 for s in high) and all(0 <= s <= 4 for s in low)
    assert len(shapes) >= 3
    assert 7 <= (score_from_reply(plain or "") or 0) and (score_from_reply(missing or "") or 0) <= 4
    assert score_from_reply("I cannot rate this.") is None


def solution_with(servers: dict[str, str], wrong: bool, question: str = KNOWN_QUESTION) -> str:
    """A generated solution with (or without) a wrong step that is not the first step."""
    for seed in range(200):
        content = chat(servers["main"], rollout_body(question, seed)).choices[0].message.content or ""
        wrong_at = first_wrong_step(content)
        if (wrong and wrong_at not in (None, 0)) or (not wrong and wrong_at is None):
            return content
    raise AssertionError("no such solution")


def prefix_through(solution: str, steps: int) -> str:
    """The solution text up to and including its `steps`-th step (over both sections)."""
    ends = [m.end() for m in re.finditer(r"</step_\d+>\n", solution)]
    return solution[: ends[steps - 1]]


def continuation_body(prefix: str, seed: int, vllm: bool = False, n: int = 1) -> dict[str, Any]:
    body = rollout_body(seed=seed, n=n)
    body["messages"].append({"role": "assistant", "content": prefix})
    if vllm:
        body.update(continue_final_message=True, add_generation_prompt=False)
    return body


@pytest.mark.parametrize("vllm", [False, True])
def test_continuation_returns_the_rest(servers: dict[str, str], vllm: bool) -> None:
    solution = solution_with(servers, wrong=False)
    prefix = prefix_through(solution, 3)
    rest = chat(servers["main"], continuation_body(prefix, 1, vllm)).choices[0].message.content or ""
    assert not rest.startswith("[Visual Elements]") and rest.rstrip().endswith("</correct_answer>")
    whole = prefix + rest
    assert STRUCTURE.match(whole), whole
    parsed = parse_steps(whole)
    assert parsed.combined[:3] == parse_steps(prefix).combined and len(parsed.reasoning) >= 2
    for body_seed in range(2):  # the same continuation request gives the same rest
        body = continuation_body(prefix, body_seed, vllm)
        assert chat(servers["main"], body).choices[0].message.content == \
            chat(servers["main"], body).choices[0].message.content


def test_continuations_are_consistent_with_the_first_wrong_step(servers: dict[str, str]) -> None:
    bad = solution_with(servers, wrong=True)
    wrong_at = first_wrong_step(bad)
    assert wrong_at is not None
    after_bad = prefix_through(bad, wrong_at + 1)
    for choice in chat(servers["main"], continuation_body(after_bad, 0, n=8)).choices:
        assert boxed_answer(choice.message.content or "") != truth()
    good_prefix = prefix_through(solution_with(servers, wrong=False), 2)
    rights = 0
    for choice in chat(servers["main"], continuation_body(good_prefix, 0, n=20)).choices:
        whole = good_prefix + (choice.message.content or "")
        is_right = boxed_answer(whole) == truth()
        assert (first_wrong_step(whole) is None) == is_right
        rights += is_right
    assert 10 <= rights <= 20  # p-continue-correct 0.8


def test_verification_reply_names_the_first_wrong_step(servers: dict[str, str]) -> None:
    def verify(solution: str) -> str:
        prompt = (f"Check each step; finish with <conclusion>Correct/Incorrect</conclusion>.\n"
                  f"<question>{KNOWN_QUESTION}</question>\n<solution>\n{solution}\n</solution>")
        body = {"model": "o4-mini", "messages": [{"role": "user", "content": prompt}]}
        return chat(servers["main"], body).choices[0].message.content or ""

    bad = solution_with(servers, wrong=True)
    verdict = verify(bad)
    assert "<conclusion>\nIncorrect\n</conclusion>" in verdict
    assert len(re.findall(r"<analysis_\d+>", verdict)) == (first_wrong_step(bad) or 0) + 1
    good = solution_with(servers, wrong=False)
    verdict = verify(good)
    assert "<conclusion>\nCorrect\n</conclusion>" in verdict
    assert len(re.findall(r"<analysis_\d+>", verdict)) == len(parse_steps(good).combined)


def test_rpm_limit(servers: dict[str, str]) -> None:
    base = servers["limits"]
    body = {"model": "rpm-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    remaining = []
    for _ in range(3):
        status, headers, _ = post(base, body)
        assert status == 200
        assert headers["x-ratelimit-limit-requests"] == "3" and headers["x-ratelimit-limit-tokens"] == "3000"
        assert re.fullmatch(r"(\d+ms|\d+(\.\d+)?s)", headers["x-ratelimit-reset-requests"])
        assert re.fullmatch(r"(\d+ms|\d+(\.\d+)?s)", headers["x-ratelimit-reset-tokens"])
        remaining.append(int(headers["x-ratelimit-remaining-requests"]))
    assert remaining == [2, 1, 0]
    for _ in range(2):  # refused requests take no budget
        status, headers, raw = post(base, body)
        assert status == 429
        error = assert_error_shape(raw, "rate_limit_exceeded")
        assert error["type"] == "requests" and error["message"].startswith("Rate limit reached for requests")
        assert 0 < int(headers["retry-after-ms"]) <= 400 and headers["retry-after"] == "1"
        assert "x-ratelimit-remaining-tokens" in headers
    time.sleep(int(headers["retry-after-ms"]) / 1000 + 0.02)
    assert post(base, body)[0] == 200


def test_tpm_limit(servers: dict[str, str]) -> None:
    base = servers["limits"]
    body = {"model": "tpm-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000, "n": 2}
    status, headers, _ = post(base, body)
    assert status == 200
    cost = 3000 - int(headers["x-ratelimit-remaining-tokens"])
    assert 2000 < cost < 2050  # prompt tokens + max_tokens * n
    status, headers, raw = post(base, body)
    assert status == 429 and assert_error_shape(raw, "rate_limit_exceeded")["type"] == "tokens"
    wait_ms = int(headers["retry-after-ms"])
    assert 150 < wait_ms < 700  # ~1000 missing tokens at 3000 per second, less the time between
    status, _, raw = post(base, dict(body, max_tokens=4000))
    assert status == 429 and "too large" in json.loads(raw)["error"]["message"]


def test_injected_429_and_5xx(servers: dict[str, str]) -> None:
    status, headers, raw = post(servers["429"], rollout_body(), headers={"Authorization": None})  # --no-auth
    assert status == 429 and int(headers["retry-after-ms"]) > 0 and headers["retry-after"]
    assert assert_error_shape(raw, "rate_limit_exceeded")["type"] == "requests"
    for seed in range(3):
        status, _, raw = post(servers["500"], rollout_body(seed=seed))
        assert status in (500, 502, 503) and assert_error_shape(raw)["type"] == "server_error"


def test_timeout_and_reset_faults(servers: dict[str, str]) -> None:
    with pytest.raises(TimeoutError):
        post(servers["timeout"], rollout_body(), timeout=0.5)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        post(servers["reset"], rollout_body())
    time.sleep(0.2)
    assert get_stats(servers["timeout"])["by_status"] == {"client_closed": 1}
    assert get_stats(servers["reset"])["by_status"] == {"reset": 1}


def test_malformed_and_length_faults(servers: dict[str, str]) -> None:
    status, headers, raw = post(servers["malformed"], rollout_body())
    assert status == 200 and headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    full = chat(servers["main"], rollout_body(seed=5)).choices[0]
    cut = chat(servers["length"], rollout_body(seed=5)).choices[0]
    assert cut.finish_reason == "length" and cut.message.content
    assert "<correct_answer>" not in cut.message.content and full.finish_reason == "stop"
    limited = chat(servers["main"], rollout_body(seed=5, max_tokens=20)).choices[0]
    assert limited.finish_reason == "length" and len(limited.message.content or "") < 150


def test_latency_does_not_serialize_requests(servers: dict[str, str]) -> None:
    start = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda s: post(servers["length"], rollout_body(seed=s))[0], range(10)))
    elapsed = time.monotonic() - start
    # Each waits 100-300 ms; one after the other would take at least 1 s.
    assert statuses == [200] * 10 and 0.1 <= elapsed < 1.0


def test_content_filter_fault_has_both_behaviours(servers: dict[str, str]) -> None:
    seen = set()
    for seed in range(8):
        status, _, raw = post(servers["content-filter"], rollout_body(seed=seed))
        if status == 400:
            error = assert_error_shape(raw, "content_filter")
            assert error["param"] == "prompt" and "filtered" in error["message"]
        else:
            choice = ChatCompletion.model_validate(json.loads(raw)).choices[0]
            assert status == 200 and choice.finish_reason == "content_filter" and choice.message.content is None
        seen.add(status)
    assert seen == {200, 400}


def test_azure_shape(servers: dict[str, str]) -> None:
    path = "/openai/deployments/dep-1/chat/completions"
    body = {"messages": [{"role": "user", "content": "How many?"}]}
    no_bearer = {"Authorization": None}
    completion = ChatCompletion.model_validate(json.loads(
        post(servers["main"], body, f"{path}?api-version=2024-10-21", {**no_bearer, "api-key": KEY})[2]))
    assert completion.model == "emulator/dep-1"
    status, _, raw = post(servers["main"], body, path, {**no_bearer, "api-key": KEY})
    assert status == 400 and assert_error_shape(raw)["param"] == "api-version"
    status, _, raw = post(servers["main"], body, f"{path}?api-version=2024-10-21", no_bearer)
    assert status == 401 and assert_error_shape(raw, "invalid_api_key")
    client = openai.AzureOpenAI(azure_endpoint=servers["main"], api_key=KEY, api_version="2024-10-21", max_retries=0)
    answer = client.chat.completions.create(model="dep-2", messages=[{"role": "user", "content": "How many?"}])
    assert answer.model == "emulator/dep-2"


def test_auth(servers: dict[str, str]) -> None:
    body = rollout_body()
    status, _, raw = post(servers["main"], body, headers={"Authorization": None})
    assert status == 401 and assert_error_shape(raw, "invalid_api_key")
    status, _, raw = post(servers["main"], body, headers={"Authorization": "Bearer wrong-key-123"})
    assert status == 401 and b"wrong-key-123" not in raw and KEY.encode() not in raw
    assert post(servers["main"], body)[0] == 200


def test_bad_requests_answer_in_the_error_shape(servers: dict[str, str]) -> None:
    status, _, raw = post(servers["main"], b"{not json")
    assert status == 400 and assert_error_shape(raw)["type"] == "invalid_request_error"
    status, _, raw = post(servers["main"], rollout_body(n=0))
    assert status == 400 and assert_error_shape(raw)["param"] == "n"
    status, _, raw = post(servers["main"], {"model": "m", "messages": []})
    assert status == 400 and assert_error_shape(raw)["param"] == "messages"
    status, _, raw = post(servers["main"], rollout_body(), path="/v1/nowhere")
    assert status == 404 and assert_error_shape(raw)


def test_stats_count_duplicates(servers: dict[str, str]) -> None:
    base = servers["main"]
    reset_stats(base)
    first, second = rollout_body(seed=100), rollout_body(seed=101)
    for body in (first, first, second):
        assert post(base, body)[0] == 200
    assert post(base, first, headers={"Authorization": "Bearer nope"})[0] == 401
    stats = get_stats(base)
    assert stats["requests"] == 4 and stats["by_status"] == {"200": 3, "401": 1}
    assert stats["completed"] == 3 and stats["duplicates"] == 1
    assert stats["completed_by_key"] == {request_key(first): 2, request_key(second): 1}
    assert sum(stats["requests_by_image_parts"].values()) == 3  # the 401 was refused before its body was read
    reset_stats(base)
    assert get_stats(base, with_keys=False) == {"requests": 0, "by_status": {}, "completed": 0, "duplicates": 0,
                                                "faults": {}, "malformed": 0, "tokens_billed": 0,
                                                "most_attempts": 0, "requests_by_image_parts": {}}


def test_openai_sdk_client(servers: dict[str, str]) -> None:
    client = openai.OpenAI(base_url=servers["main"] + "/v1", api_key=KEY, max_retries=0)
    completion = client.chat.completions.create(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": ROLLOUT_PROMPT.format(q=KNOWN_QUESTION)}], n=2)
    assert completion.model == "emulator/gpt-4.1-mini" and len(completion.choices) == 2
    assert [m.id for m in client.models.list()] == ["emulator"]


def png_data_url(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_prompt_tokens_bill_images_by_tiles(servers: dict[str, str]) -> None:
    def prompt_tokens(extra_parts: list[dict[str, Any]]) -> int:
        content = [{"type": "text", "text": "What is in the picture?"}, *extra_parts]
        body = {"model": "m", "messages": [{"role": "user", "content": content}]}
        usage = chat(servers["main"], body).usage
        assert usage is not None
        return usage.prompt_tokens

    url = png_data_url(1024, 1024)
    text_only = prompt_tokens([])
    assert prompt_tokens([{"type": "image_url", "image_url": {"url": url}}]) - text_only == 85 + 170 * 4
    assert prompt_tokens([{"type": "image_url", "image_url": {"url": url, "detail": "low"}}]) - text_only == 85
    assert tile_count(2048, 4096) == 6 and tile_count(512, 512) == 1 and tile_count(4000, 1000) == 4


def test_pure_helpers(tmp_path: Path) -> None:
    assert [format_duration(s) for s in (0.12, 1, 1.5, 360, 3723)] == ["120ms", "1s", "1.5s", "6m0s", "1h2m3s"]
    assert all(BAD_PHRASE not in t for t in PERCEPTION_GOOD + REASONING_GOOD)
    assert all(BAD_PHRASE in t for t in PERCEPTION_BAD + REASONING_BAD)
    assert truth_for_question("abc") == str(int("900150983cd24fb0d6963f7d28e17f72"[:8], 16) % 10)
    conversations = [{"conversations": [{"from": "human", "value": "<image>\nHow many?"},
                                        {"from": "gpt", "value": "3"}]}]
    (tmp_path / "key.json").write_text(json.dumps(conversations))
    assert truth_for_question("How many?", load_answer_key(tmp_path / "key.json")) == "3"
