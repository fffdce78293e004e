"""The emulator's Files and Batches APIs, driven by the real `openai` SDK clients."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request

import openai
import pytest
from openai.types import Batch, FileObject

from rollkit.batch.verdicts import parse_conclusion
from rollkit.emulator.testing import get_stats, run_emulators
from rollkit.emulator.tokens import count_prompt_tokens
from tests.support.batch import FIXTURE_BATCH_LINES

pytestmark = pytest.mark.timeout(120)

KEY = "test-key"
API_VERSION = "2024-10-21"
FINAL = ("completed", "failed", "expired", "cancelled")


def lines(n: int, model: str = "dep", url: str = "/v1/chat/completions", tag: str = "") -> bytes:
    rows = [{"custom_id": f"{tag}req-{i}", "method": "POST", "url": url,
             "body": {"model": model, "messages": [{"role": "user", "content": f"Say hello {tag}{i}."}]}}
            for i in range(n)]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


QUOTA_LINES = 100
# one file of QUOTA_LINES fits the quota, two at once do not
QUOTA = int(1.5 * sum(count_prompt_tokens(json.loads(line)["body"]) for line in lines(QUOTA_LINES).splitlines()))
SERVERS = {
    "plain": ["--batch-time-scale", "0.05", "--judge-garbage", "0", "--require-key", KEY],
    "default": [],  # no flag at all: a small batch still finishes within a few seconds
    "quota": ["--batch-enqueued-tokens", str(QUOTA), "--batch-fail-fast"],
    "limits": ["--batch-time-scale", "0.05", "--batch-max-lines", "3", "--batch-max-bytes", "4000"],
    "expire": ["--batch-time-scale", "0.05", "--batch-fault-expire", "1"],
    "stall": ["--batch-time-scale", "0.05", "--batch-fault-stall", "1"],
    "lines": ["--batch-time-scale", "0.05", "--batch-fault-line-500", "0.4", "--batch-fault-content-filter", "0.3"],
    "reasoning": ["--batch-time-scale", "0.05", "--reasoning-rules"],
}


@pytest.fixture(scope="module")
def urls():
    with run_emulators(*SERVERS.values()) as started:
        yield dict(zip(SERVERS, started, strict=True))


def oai(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


def azure(url: str) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=url, api_key=KEY, api_version=API_VERSION, max_retries=0)


def raw_get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {KEY}", **(headers or {})})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait(client: openai.OpenAI, batch_id: str, until=FINAL, timeout: float = 30) -> Batch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in until or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)


def run_batch(client: openai.OpenAI, content: bytes, endpoint: str = "/v1/chat/completions", **kw) -> Batch:
    uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h", **kw)
    return wait(client, batch.id)


def content_lines(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    return [] if file_id is None else [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


def test_sdk_round_trip_in_both_shapes(urls):
    url = urls["plain"]
    client = oai(url)
    data = lines(4)
    uploaded = client.files.create(file=("in.jsonl", data), purpose="batch")
    assert FileObject.model_validate(raw_get(f"{url}/v1/files/{uploaded.id}")[1]) == uploaded
    assert (uploaded.bytes, uploaded.purpose, uploaded.filename) == (len(data), "batch", "in.jsonl")
    assert client.files.content(uploaded.id).content == data
    assert uploaded.id in [f.id for f in client.files.list(purpose="batch")]
    created = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                    completion_window="24h", metadata={"who": "test"})
    assert created.status == "validating" and created.metadata == {"who": "test"}
    seen = set()
    while (batch := client.batches.retrieve(created.id)).status not in FINAL:
        seen.add(batch.status)
        Batch.model_validate(raw_get(f"{url}/v1/batches/{created.id}")[1])
        time.sleep(0.01)
    assert batch.status == "completed" and batch.request_counts.completed == 4 and batch.error_file_id is None
    assert seen <= {"validating", "in_progress", "finalizing"} and batch.completed_at >= batch.created_at
    out = content_lines(client, batch.output_file_id)
    assert sorted(x["custom_id"] for x in out) == [f"req-{i}" for i in range(4)]
    assert all(x["id"].startswith("batch_req_") and x["error"] is None for x in out)
    # a batch line gets exactly what the online route answers to the same body
    body = json.loads(data.splitlines()[0])["body"]
    online = client.chat.completions.create(**body)
    first = next(x for x in out if x["custom_id"] == "req-0")["response"]["body"]
    assert first["choices"][0]["message"]["content"] == online.choices[0].message.content
    assert created.id in [b.id for b in client.batches.list()]
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    # Azure: api-key header, api-version, /chat/completions urls, no top-level id in output lines
    az = azure(url)
    done = run_batch(az, lines(2, url="/chat/completions"), endpoint="/chat/completions")
    assert done.status == "completed" and done.error_file_id is not None  # an empty error file, as Azure
    assert az.files.content(done.error_file_id).content == b""
    assert all("id" not in x for x in content_lines(az, done.output_file_id))
    status, body = raw_get(f"{url}/openai/batches/{done.id}", {"api-key": KEY})
    assert status == 400 and body["error"]["code"] == "missing_api_version"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).files.list()


def test_the_seeds_batch_lines_run_through_with_no_flags(urls):
    az = azure(urls["default"])
    start = time.monotonic()
    done = run_batch(az, FIXTURE_BATCH_LINES.read_bytes(), endpoint="/chat/completions")
    assert done.status == "completed" and time.monotonic() - start < 6
    out = content_lines(az, done.output_file_id)
    assert len(out) == 2 and all(x["response"]["status_code"] == 200 for x in out)
    assert all(x["response"]["body"]["model"] == "emulator/o4-mini" for x in out)
    texts = [x["response"]["body"]["choices"][0]["message"]["content"] for x in out]
    assert all("<analysis_1>" in t for t in texts) and sum(parse_conclusion(t) is not None for t in texts) >= 1


@pytest.mark.parametrize("content,code", [
    (lines(2) + lines(1), "duplicate_custom_id"),
    (lines(2, url="/chat/completions"), "url_mismatch"),
    (lines(1) + lines(1, model="other", tag="x"), "model_mismatch"),
    (lines(4), "too_many_tasks"),
    (b"\n", "empty_file"),
    (b'{"custom_id": "a", "method": "POST"\n', "invalid_json_line"),
    (b"\xef\xbb\xbf" + lines(1), "invalid_json_line"),
])
def test_input_files_are_validated_like_the_services(urls, content, code):
    batch = run_batch(oai(urls["limits"]), content)
    assert batch.status == "failed" and batch.errors.data[0].code == code


def test_uploads_over_the_size_limit_are_refused(urls):
    with pytest.raises(openai.BadRequestError) as caught:
        oai(urls["limits"]).files.create(file=("big.jsonl", b"x" * 5000), purpose="batch")
    assert caught.value.code == "file_too_large"


def test_enqueued_token_quota_fails_fast_on_azure_and_in_validation_on_openai(urls):
    url = urls["quota"]
    az, client = azure(url), oai(url)
    azure_lines = lines(QUOTA_LINES, url="/chat/completions")
    first_file = az.files.create(file=("a.jsonl", azure_lines), purpose="batch")
    first = az.batches.create(input_file_id=first_file.id, endpoint="/chat/completions", completion_window="24h")
    openai_file = client.files.create(file=("o.jsonl", lines(QUOTA_LINES)), purpose="batch")
    held = client.batches.create(input_file_id=openai_file.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait(az, first.id, until=("in_progress",))
    wait(client, held.id, until=("in_progress",))
    with pytest.raises(openai.BadRequestError) as caught:
        az.batches.create(input_file_id=first_file.id, endpoint="/chat/completions", completion_window="24h")
    assert caught.value.code == "token_limit_exceeded"
    over = client.batches.create(input_file_id=openai_file.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert over.status == "validating"  # OpenAI's create succeeds; the batch fails in validation
    failed = wait(client, over.id)
    assert failed.status == "failed" and failed.errors.data[0].code == "token_limit_exceeded"
    assert wait(az, first.id).status == "completed" and wait(client, held.id).status == "completed"
    again = az.batches.create(input_file_id=first_file.id, endpoint="/chat/completions", completion_window="24h")
    assert wait(az, again.id).status == "completed"  # the quota frees up as batches finish
    stats = get_stats(url)["batch"]
    assert stats["refused_creates"] == 1 and stats["created_by_sha256"] == {
        first_file_sha(url, first_file.id): 2, first_file_sha(url, openai_file.id): 2}


def first_file_sha(url: str, file_id: str) -> str:
    return hashlib.sha256(oai(url).files.content(file_id).content).hexdigest()


def test_expired_batch_keeps_partial_output(urls):
    client = oai(urls["expire"])
    batch = run_batch(client, lines(10))
    out, errors = content_lines(client, batch.output_file_id), content_lines(client, batch.error_file_id)
    assert batch.status == "expired" and batch.expired_at and 1 <= len(out) < 10 and len(out) + len(errors) == 10
    assert all(e["response"] is None and e["error"]["code"] == "batch_expired" for e in errors)
    assert batch.request_counts.completed == len(out)


def test_stalled_batch_waits_for_cancel_then_keeps_partial_output(urls):
    client = oai(urls["stall"])
    uploaded = client.files.create(file=("s.jsonl", lines(10)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    first = wait(client, batch.id, until=("in_progress",))
    time.sleep(1.0)
    later = client.batches.retrieve(batch.id)
    assert later.status == "in_progress" and later.request_counts == client.batches.retrieve(batch.id).request_counts
    assert first.status == "in_progress"
    assert client.batches.cancel(batch.id).status == "cancelling"
    done = wait(client, batch.id)
    out, errors = content_lines(client, done.output_file_id), content_lines(client, done.error_file_id)
    assert done.status == "cancelled" and len(out) == later.request_counts.completed and len(out) + len(errors) == 10
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}


def test_line_faults_500s_and_content_filter_refusals(urls):
    client = oai(urls["lines"])
    data = lines(30)
    first = run_batch(client, data)
    errors = content_lines(client, first.error_file_id)
    statuses = {e["response"]["status_code"] for e in errors}
    assert first.status == "completed" and statuses == {400, 500}
    refused = {e["custom_id"] for e in errors if e["response"]["status_code"] == 400}
    assert all(e["response"]["body"]["error"]["code"] == "content_filter" and e["error"] is None
               for e in errors if e["custom_id"] in refused)
    assert first.request_counts.failed == len(errors) and first.request_counts.completed == 30 - len(errors)
    second = run_batch(client, data)  # the filter refuses the same prompts again; 500s are drawn anew
    again = {e["custom_id"] for e in content_lines(client, second.error_file_id) if e["response"]["status_code"] == 400}
    assert again == refused
    stats = get_stats(urls["lines"])["batch"]
    assert list(stats["uploads_by_sha256"].values()) == [2] and stats["faults"]["content_filter"] == 2 * len(refused)


def test_a_reasoning_models_rules_hold_for_batch_lines_as_online(urls):
    """The Batch API refuses what the online route refuses: a line with `temperature` or `max_tokens`
    for o4-mini gets the same 400 body in the error file; the others are answered, with reasoning."""
    client = oai(urls["reasoning"])
    extra = {"hot": {"temperature": 0.7}, "old": {"max_tokens": 50}, "fine": {"max_completion_tokens": 400}}
    rows = [{"custom_id": name, "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "o4-mini", "messages": [{"role": "user", "content": f"Say hello {name}."}], **params}}
            for name, params in extra.items()]
    batch = run_batch(client, "".join(json.dumps(r) + "\n" for r in rows).encode())
    assert batch.status == "completed" and (batch.request_counts.completed, batch.request_counts.failed) == (1, 2)
    errors = {e["custom_id"]: e for e in content_lines(client, batch.error_file_id)}
    assert set(errors) == {"hot", "old"} and all(e["error"] is None for e in errors.values())
    for row in rows[:2]:
        with pytest.raises(openai.BadRequestError) as online:
            client.chat.completions.create(**row["body"])
        response = errors[row["custom_id"]]["response"]
        assert response["status_code"] == 400 and response["body"]["error"] == online.value.body
    assert errors["hot"]["response"]["body"]["error"]["code"] == "unsupported_value"
    assert errors["old"]["response"]["body"]["error"]["param"] == "max_tokens"
    answered = content_lines(client, batch.output_file_id)
    assert [x["custom_id"] for x in answered] == ["fine"]
    assert answered[0]["response"]["body"]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
