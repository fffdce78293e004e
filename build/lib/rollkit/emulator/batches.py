"""The emulator's Batches API (create, retrieve, cancel, list), with the Files API beside it.

Routes, with the same handlers for each shape:

* OpenAI: `/v1/files...`, `/v1/batches...` (`Authorization: Bearer`);
* Azure: `/openai/files...`, `/openai/batches...` with `?api-version=` (`api-key` header), and the
  v1 API `/openai/v1/files...`, `/openai/v1/batches...`. On Azure `model` in every line names the
  deployment and line urls may be `/chat/completions` or `/v1/chat/completions`.

Validation as the services do it (a batch fails in `validating` with `errors.data[].code`):
`empty_file`, `invalid_json_line`, `duplicate_custom_id`, `url_mismatch`, `model_mismatch`,
`invalid_request`, `too_many_tasks`. Uploads over `--batch-max-bytes` are refused (400).
`expires_after` (uploads) and `output_expires_after` (batches) must be `{"anchor": "created_at",
"seconds": N}` within the service's range (OpenAI 1 hour to 30 days, Azure 14 to 30 days); files
then carry `expires_at`. `--batch-no-files-list` and `--batch-no-batches-list` answer GET /files and
GET /batches with 404, as servers without them.

Enqueued-token quota (`--batch-enqueued-tokens`): the prompt tokens of every batch between
validation and its final status count against its model (OpenAI) or deployment (Azure). A batch
over the quota fails in validation with `token_limit_exceeded`; with `--batch-fail-fast`, Azure
routes refuse the create at once with a 400 carrying that code, as Azure's fail-fast regions do.

Stats (under `batch` in GET /_emulator/stats, once a file exists): uploads and creations per content sha256, refused
creates, answers per custom_id (a line paid twice shows up in `answered_twice`), faults, final
statuses, lines run by their number of image parts.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rollkit.emulator import batch_jobs
from rollkit.emulator.batch_jobs import DAY_S, SERVICE_MAX_LINES, Job, LineProblem
from rollkit.emulator.files import FileStore, expiry_problem, page
from rollkit.emulator.shapes import error_response, json_response

if TYPE_CHECKING:
    from rollkit.emulator.server import Emulator

CHAT_ENDPOINTS = ("/v1/chat/completions", "/chat/completions")


class BatchStats:
    def __init__(self, files: FileStore):
        self.files = files
        self.reset()

    def reset(self) -> None:
        self.created_by_sha256: Counter[str] = Counter()
        self.refused_creates = 0
        self.answers_by_custom_id: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.final_status: Counter[str] = Counter()
        self.lines_by_image_parts: Counter[str] = Counter()  # batch lines run, by image_url parts
        self.files.reset()

    def as_json(self) -> dict[str, Any]:
        """{} until a file or batch exists: the stats show a `batch` part only once it is used."""
        if not self.files.files:
            return {}
        return {**self.files.as_json(), "created_by_sha256": dict(self.created_by_sha256),
                "batches_created": sum(self.created_by_sha256.values()), "refused_creates": self.refused_creates,
                "lines_answered": sum(self.answers_by_custom_id.values()),
                "answered_twice": sorted(k for k, n in self.answers_by_custom_id.items() if n > 1),
                "faults": dict(self.faults), "final_status": dict(self.final_status),
                "lines_by_image_parts": dict(self.lines_by_image_parts)}


class BatchStore:
    def __init__(self, emulator: Emulator, files: FileStore):
        self.emulator = emulator
        self.settings = emulator.config.batch
        self.files = files
        self.jobs: dict[str, Job] = {}
        self.enqueued: Counter[tuple[bool, str]] = Counter()
        self.stats = BatchStats(files)
        self._ids = itertools.count(1)

    # -- quota ------------------------------------------------------------------------------------

    def over_quota(self, azure: bool, model: str, tokens: int) -> bool:
        limit = self.settings.enqueued_tokens
        return bool(limit) and self.enqueued[(azure, model)] + tokens > limit

    def quota_error(self, azure: bool, model: str) -> dict[str, Any]:
        limit = self.settings.enqueued_tokens
        if azure:
            message = (f"The number of enqueued tokens has surpassed the configured limit of {limit} for the "
                       f"deployment '{model}'. Please either increase the limit or try again once the current "
                       "jobs have finished.")
        else:
            message = (f"Enqueued token limit reached for {model} in organization org-emulator. Limit: "
                       f"{limit:,} enqueued tokens. Please try again once some in_progress batches have been completed.")
        return {"code": "token_limit_exceeded", "message": message, "param": None, "line": None}

    def admit(self, job: Job) -> bool:
        """End of validation: take the job's tokens from its quota, or fail it for the quota."""
        if self.over_quota(job.azure, job.model, job.tokens):
            job.fail(self.quota_error(job.azure, job.model))
            return False
        self.enqueued[(job.azure, job.model)] += job.tokens
        return True

    def release(self, job: Job) -> None:
        self.enqueued[(job.azure, job.model)] -= job.tokens

    # -- results ----------------------------------------------------------------------------------

    def write_results(self, job: Job) -> None:
        def dump(lines: list[dict]) -> bytes:
            return b"".join((json_line(line) + "\n").encode() for line in lines)

        expiry = job.data.get("output_expires_after")
        if job.outputs or job.azure:
            stored = self.files.add(dump(job.outputs), f"{job.id}_output.jsonl", "batch_output", expiry)
            job.data["output_file_id"] = stored.id
        if job.errors or job.azure:  # Azure points even a clean batch at an empty error file
            stored = self.files.add(dump(job.errors), f"{job.id}_error.jsonl", "batch_output", expiry)
            job.data["error_file_id"] = stored.id
        job.count()

    # -- routes -----------------------------------------------------------------------------------

    async def create(self, request: web.Request, azure: bool) -> web.Response:
        try:
            params = await request.json()
        except ValueError:
            return error_response(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        problem = self._create_problem(params, azure)
        if problem is not None:
            return problem
        stored = self.files.files[params["input_file_id"]]
        raw = self.files.read(stored.id)
        job = self._new_job(params, azure, stored.sha256)
        try:
            job.lines = batch_jobs.parse_input(raw, params["endpoint"], azure,
                                               self.settings.max_lines or SERVICE_MAX_LINES[azure])
            job.model = job.lines[0]["body"]["model"]
        except LineProblem as exc:
            job.data["errors"] = {"object": "list", "data": [exc.error]}
        else:
            job.tokens = batch_jobs.prompt_tokens_of(job.lines) if self.settings.enqueued_tokens else 0
            if azure and self.settings.fail_fast and self.over_quota(azure, job.model, job.tokens):
                self.stats.refused_creates += 1
                err = self.quota_error(azure, job.model)
                return error_response(400, err["message"], "invalid_request_error", None, "token_limit_exceeded")
        job.data["model"] = job.model or None
        creation = self.stats.created_by_sha256[stored.sha256]
        self.stats.created_by_sha256[stored.sha256] += 1
        self.jobs[job.id] = job
        if job.data.get("errors"):  # failed validation: shown as validating for one phase first
            job.task = _spawn(_fail_later(job, self))
        else:
            batch_jobs.draw_fault(job, self, creation)
            job.task = _spawn(batch_jobs.run(job, self))
        return json_response(200, job.as_json())

    def _create_problem(self, params: Any, azure: bool) -> web.Response | None:
        if not isinstance(params, dict):
            return error_response(400, "The request body must be a JSON object.", "invalid_request_error")
        if params.get("completion_window") != "24h":
            return error_response(400, "completion_window must be '24h'.", "invalid_request_error", "completion_window")
        endpoint = params.get("endpoint")
        if endpoint not in CHAT_ENDPOINTS or (not azure and endpoint != "/v1/chat/completions"):
            return error_response(400, f"The emulator runs chat completions batches only, not {endpoint!r}.",
                                  "invalid_request_error", "endpoint")
        problem = expiry_problem(params.get("output_expires_after"), azure, "output_expires_after")
        if problem is not None:
            return problem
        stored = self.files.files.get(params.get("input_file_id") or "")
        if stored is None:
            return error_response(404, f"No such File object: {params.get('input_file_id')}",
                                  "invalid_request_error", "input_file_id")
        if stored.purpose != "batch":
            return error_response(400, "The input file must be uploaded with purpose 'batch'.",
                                  "invalid_request_error", "input_file_id")
        return None

    def _new_job(self, params: dict, azure: bool, sha: str) -> Job:
        now = int(time.time())
        number = next(self._ids)
        batch_id = f"batch_emu{number:06d}{hashlib.md5(f'{sha}{time.time_ns()}'.encode()).hexdigest()[:12]}"
        data = {"id": batch_id, "object": "batch", "endpoint": params["endpoint"], "errors": None,
                "input_file_id": params["input_file_id"], "completion_window": "24h", "status": "validating",
                "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
                "expires_at": now + DAY_S, "finalizing_at": None, "completed_at": None, "failed_at": None,
                "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
                "metadata": params.get("metadata") or None}
        if params.get("output_expires_after") is not None:
            data["output_expires_after"] = params["output_expires_after"]
        return Job(data, azure, sha)

    def _find(self, request: web.Request) -> Job | web.Response:
        batch_id = request.match_info["batch_id"]
        job = self.jobs.get(batch_id)
        if job is None:
            return error_response(404, f"No such batch: {batch_id}", "invalid_request_error", "batch_id")
        return job

    async def retrieve(self, request: web.Request) -> web.Response:
        job = self._find(request)
        return job if isinstance(job, web.Response) else json_response(200, job.as_json())

    async def cancel(self, request: web.Request) -> web.Response:
        job = self._find(request)
        if isinstance(job, web.Response):
            return job
        if job.data["status"] in ("validating", "in_progress"):
            job.cancel.set()
            job.set_status("cancelling")
        elif job.data["status"] not in ("cancelling", "cancelled"):
            return error_response(409, f"Cannot cancel a batch with status '{job.data['status']}'.",
                                  "invalid_request_error")
        return json_response(200, job.as_json())

    async def list(self, request: web.Request) -> web.Response:
        if not self.settings.batches_list:
            return error_response(404, "Unrecognized request URL (GET: /batches).", "invalid_request_error")
        return json_response(200, page(list(reversed(self.jobs.values())), request, default_limit=20))


async def _fail_later(job: Job, store: BatchStore) -> None:
    await asyncio.sleep(batch_jobs.VALIDATE_S * store.settings.time_scale)
    job.set_status("failed")
    store.stats.final_status["failed"] += 1


_TASKS: set[asyncio.Task] = set()


def _spawn(coro: Any) -> asyncio.Task:
    task = asyncio.get_running_loop().create_task(coro)
    _TASKS.add(task)  # a task only weakly referenced by the loop could be collected mid-run
    task.add_done_callback(_TASKS.discard)
    return task


def json_line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False)


def add_batch_routes(app: web.Application, emulator: Emulator) -> None:
    files = FileStore(emulator.config.batch.max_bytes, listed=emulator.config.batch.files_list)
    store = BatchStore(emulator, files)
    emulator.extra_stats["batch"] = store.stats

    async def cleanup(_: web.Application) -> None:
        files.close()

    app.on_cleanup.append(cleanup)
    for prefix, azure, versioned in (("/v1", False, False), ("/openai", True, True), ("/openai/v1", True, False)):
        guard = _guard(emulator, azure, versioned)
        routes = (
            ("POST", "/files", lambda r, a=azure: files.upload(r, a)), ("GET", "/files", files.list),
            ("GET", "/files/{file_id}", files.retrieve), ("DELETE", "/files/{file_id}", files.delete),
            ("GET", "/files/{file_id}/content", files.content),
            ("POST", "/batches", lambda r, a=azure: store.create(r, a)), ("GET", "/batches", store.list),
            ("GET", "/batches/{batch_id}", store.retrieve), ("POST", "/batches/{batch_id}/cancel", store.cancel),
        )
        for method, path, handler in routes:
            app.router.add_route(method, prefix + path, guard(handler))


def _guard(emulator: Emulator, azure: bool, versioned: bool):
    """Auth (Bearer, or Azure's api-key header) and Azure's api-version check before a handler."""
    def wrap(handler):
        async def guarded(request: web.Request) -> web.StreamResponse:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            key = request.headers.get("api-key", "").strip() if azure else ""
            key = key or (token.strip() if scheme.lower() == "bearer" else "")
            problem = emulator._auth_error(key)
            if problem is None and versioned and not request.query.get("api-version"):
                problem = error_response(400, "Missing required query parameter 'api-version'.",
                                         "invalid_request_error", "api-version", "missing_api_version")
            return problem if problem is not None else await handler(request)
        return guarded
    return wrap
