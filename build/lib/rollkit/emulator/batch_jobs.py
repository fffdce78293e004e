"""One emulated batch from `validating` to a final status, and the checks the services make.

Phases take `time_scale` x (VALIDATE_S, LINE_S per line, FINALIZE_S, CANCEL_S) seconds. Lines are
answered by the server's own `completion()` (exactly what the online route would answer). Output
and error lines use the services' shapes: a 200 `response` in the output file; HTTP failures, the
model's refusals among them (`model_rules`, as online), in the error file with
`response.status_code` and `error: null`; expired and cancelled lines with `response: null` and
`error.code` `batch_expired` / `batch_cancelled`. Azure lines have no `id`, and Azure always writes
an error file (empty when nothing failed).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rollkit.emulator import model_rules
from rollkit.emulator.policy import seed_from
from rollkit.emulator.stats import image_part_count, request_key
from rollkit.emulator.tokens import count_prompt_tokens

if TYPE_CHECKING:
    from rollkit.emulator.batches import BatchStore

VALIDATE_S = 1.0
LINE_S = 0.02
FINALIZE_S = 0.5
CANCEL_S = 0.5
LINES_PER_STEP = 5  # lines answered between two sleeps: keeps the server responsive
DAY_S = 24 * 3600
SERVICE_MAX_LINES = {False: 50_000, True: 100_000}  # OpenAI, Azure
BATCH_FAULTS = ("fail", "expire", "stall")


class LineProblem(Exception):
    def __init__(self, code: str, message: str, line: int | None = None, param: str | None = None):
        super().__init__(message)
        self.error = {"code": code, "message": message, "line": line, "param": param}


def same_route(url: str, endpoint: str, azure: bool) -> bool:
    """OpenAI wants the exact endpoint; Azure takes `/chat/completions` and `/v1/chat/completions`."""
    if azure:
        return url.removeprefix("/v1") == endpoint.removeprefix("/v1")
    return url == endpoint


def parse_input(raw: bytes, endpoint: str, azure: bool, max_lines: int) -> list[dict]:
    """The lines of an input file, or LineProblem with the code the services use."""
    if not raw.strip():
        raise LineProblem("empty_file", "The input file is empty.")
    if raw.startswith(b"\xef\xbb\xbf"):
        if azure:  # Azure's misleading message for a BOM, as users report it
            raise LineProblem("invalid_request", "A valid model deployment name couldn't be extracted from the input file.")
        raise LineProblem("invalid_json_line", "Line 1 is not valid JSON (it starts with a byte order mark).", 1)
    lines, seen, model = [], set(), None
    for number, text in enumerate(raw.splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            raise LineProblem("invalid_json_line", f"Line {number} is not valid JSON.", number) from None
        _check_line(line, number, endpoint, azure)
        if line["custom_id"] in seen:
            raise LineProblem("duplicate_custom_id", f"The custom_id '{line['custom_id']}' on line {number} is "
                              "used more than once.", number, "custom_id")
        seen.add(line["custom_id"])
        model = model or line["body"]["model"]
        if line["body"]["model"] != model:
            raise LineProblem("model_mismatch", f"Line {number} uses model '{line['body']['model']}'; every line "
                              f"of a file must use '{model}'.", number, "body.model")
        lines.append(line)
    if len(lines) > max_lines:
        raise LineProblem("too_many_tasks", f"The input file has {len(lines)} requests, which exceeds the maximum "
                          f"allowed value of {max_lines:,}.")
    return lines


def _check_line(line: Any, number: int, endpoint: str, azure: bool) -> None:
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str) or not isinstance(line.get("body"), dict):
        raise LineProblem("invalid_request", f"Line {number} needs 'custom_id', 'method', 'url' and 'body'.", number)
    if line.get("method") != "POST":
        raise LineProblem("invalid_request", f"Line {number}: method must be POST.", number, "method")
    if not isinstance(line.get("url"), str) or not same_route(line["url"], endpoint, azure):
        raise LineProblem("url_mismatch", f"Line {number} has url '{line.get('url')}', which does not match the "
                          f"batch endpoint '{endpoint}'.", number, "url")
    if not isinstance(line["body"].get("model"), str) or not line["body"]["model"]:
        message = "A valid model deployment name couldn't be extracted" if azure else "'model' is required"
        raise LineProblem("invalid_request", f"Line {number}: {message}.", number, "body.model")


@dataclass
class Job:
    data: dict[str, Any]  # the Batch object as served
    azure: bool
    input_sha256: str
    lines: list[dict] = field(default_factory=list)
    model: str = ""
    tokens: int = 0  # enqueued prompt tokens, held from validation to the final status
    fault: str | None = None
    stop_at: int = 0
    outputs: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None

    @property
    def id(self) -> str:
        return self.data["id"]

    def as_json(self) -> dict[str, Any]:
        return dict(self.data)

    def set_status(self, status: str) -> None:
        self.data["status"] = status
        stamp = {"in_progress": "in_progress_at", "finalizing": "finalizing_at", "completed": "completed_at",
                 "failed": "failed_at", "expired": "expired_at", "cancelling": "cancelling_at",
                 "cancelled": "cancelled_at"}.get(status)
        if stamp:
            self.data[stamp] = int(time.time())

    def fail(self, *errors: dict) -> None:
        self.data["errors"] = {"object": "list", "data": list(errors)}
        self.set_status("failed")

    def count(self) -> None:
        self.data["request_counts"] = {"total": len(self.lines), "completed": len(self.outputs),
                                       "failed": len(self.errors)}


def prompt_tokens_of(lines: list[dict]) -> int:
    return sum(count_prompt_tokens(line["body"]) for line in lines)


def draw_fault(job: Job, store: BatchStore, creation: int) -> None:
    """Whether this batch fails, expires or stalls, and after how many lines; seeded by its input."""
    s = store.settings
    rng = random.Random(seed_from(job.input_sha256, store.emulator.config.seed, "batch", creation))
    rates = {"fail": s.fault_fail, "expire": s.fault_expire, "stall": s.fault_stall}
    hits = [name for name in BATCH_FAULTS if rng.random() < rates[name]]
    job.fault = hits[0] if hits else None
    # part way: at least one line is answered first; a one-line batch has no "part way" and never hits it
    job.stop_at = rng.randint(1, len(job.lines) - 1) if len(job.lines) > 1 else len(job.lines)


async def run(job: Job, store: BatchStore) -> None:
    """validating -> in_progress -> finalizing -> completed, or failed / expired / cancelled."""
    scale = store.settings.time_scale
    held = False
    try:
        if await _sleep_or_cancel(job, VALIDATE_S * scale):
            return await _cancelled(job, store)
        if not store.admit(job):
            return
        held = True
        job.set_status("in_progress")
        job.count()
        for index, line in enumerate(job.lines):
            if index == job.stop_at and job.fault is not None:
                if await _fault(job, store):
                    return
            if job.cancel.is_set():
                return await _cancelled(job, store)
            _answer(job, store, line)
            job.count()
            if index % LINES_PER_STEP == LINES_PER_STEP - 1 and await _sleep_or_cancel(job, LINE_S * LINES_PER_STEP * scale):
                return await _cancelled(job, store)
        job.set_status("finalizing")
        await asyncio.sleep(FINALIZE_S * scale)
        store.write_results(job)
        job.set_status("completed")
    finally:
        if held:
            store.release(job)
        store.stats.final_status[job.data["status"]] += 1


async def _sleep_or_cancel(job: Job, seconds: float) -> bool:
    try:
        await asyncio.wait_for(job.cancel.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def _fault(job: Job, store: BatchStore) -> bool:
    """Apply the batch's fault at its stop line; True when the batch ended there."""
    store.stats.faults[job.fault] += 1
    if job.fault == "stall":
        await job.cancel.wait()  # no progress at all until someone cancels it
        await _cancelled(job, store)
        return True
    if job.fault == "expire":
        _unfinished(job, "batch_expired", "This request could not be executed before the completion window expired.")
        store.write_results(job)
        job.set_status("expired")
        return True
    store.write_results(job)  # fail: what was answered so far is kept, the rest has no result at all
    job.fail({"code": "server_error", "message": "The batch failed while in progress. Please retry it.",
              "line": None, "param": None})
    return True


async def _cancelled(job: Job, store: BatchStore) -> None:
    job.set_status("cancelling")
    await asyncio.sleep(CANCEL_S * store.settings.time_scale)
    _unfinished(job, "batch_cancelled", "This request was not executed because the batch was cancelled.")
    store.write_results(job)
    job.set_status("cancelled")


def _unfinished(job: Job, code: str, message: str) -> None:
    done = {line["custom_id"] for line in job.outputs} | {line["custom_id"] for line in job.errors}
    for line in job.lines:
        if line["custom_id"] not in done:
            job.errors.append(_line_out(job, line["custom_id"], None, {"code": code, "message": message}))
    job.count()


def _line_out(job: Job, custom_id: str, response: dict | None, error: dict | None) -> dict:
    out: dict[str, Any] = {} if job.azure else {"id": f"batch_req_{seed_from(job.id, custom_id) % 16**24:024x}"}
    out.update({"custom_id": custom_id, "response": response, "error": error})
    return out


def _answer(job: Job, store: BatchStore, line: dict) -> None:
    s, body, custom_id = store.settings, line["body"], line["custom_id"]
    key = request_key(body)
    store.stats.lines_by_image_parts[str(image_part_count(body))] += 1
    attempt = store.stats.attempts[custom_id]
    store.stats.attempts[custom_id] += 1
    seed = store.emulator.config.seed
    request_id = f"req_{seed_from(key, attempt, 'batch') % 16**24:024x}"
    # The model's rules (a reasoning model's refused parameters, the context) hold for batch lines too:
    # the line is refused as the online route would refuse it, in the error file.
    refused = model_rules.refused_body(store.emulator.config.rules, body, job.model, count_prompt_tokens(body))
    if refused is not None:
        job.errors.append(_line_out(job, custom_id, {"status_code": refused[0], "request_id": request_id,
                                                     "body": refused[1]}, None))
        return
    # A filter refuses the same prompt every time; a 500 is drawn afresh on every try.
    if random.Random(seed_from(key, seed, "batch-filter")).random() < s.fault_content_filter:
        store.stats.faults["content_filter"] += 1
        response = {"status_code": 400, "request_id": request_id, "body": content_filter_body()}
        job.errors.append(_line_out(job, custom_id, response, None))
        return
    if random.Random(seed_from(key, seed, "batch-500", attempt)).random() < s.fault_line_500:
        store.stats.faults["line_500"] += 1
        error = {"error": {"message": "The server had an error processing your request.", "type": "server_error",
                           "param": None, "code": None}}
        job.errors.append(_line_out(job, custom_id, {"status_code": 500, "request_id": request_id, "body": error}, None))
        return
    payload = store.emulator.completion(body, key, job.model, attempt)
    if job.azure:
        payload["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": {}}]
    store.stats.answers_by_custom_id[custom_id] += 1
    job.outputs.append(_line_out(job, custom_id, {"status_code": 200, "request_id": request_id, "body": payload}, None))


def content_filter_body() -> dict:
    inner = {"code": "ResponsibleAIPolicyViolation",
             "content_filter_result": {"violence": {"filtered": True, "severity": "medium"}}}
    return {"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                                 "management policy.", "type": None, "param": "prompt", "code": "content_filter",
                      "status": 400, "innererror": inner}}
