"""Files and Batches calls for one endpoint, through the official `openai` SDK.

`OpenAI` for `kind = "openai"` endpoints (base_url ends in /v1), `AzureOpenAI` for `kind = "azure"`
(resource URL, `api-version`, `api-key` header). Errors are told apart by exception type and the
structured error `code`, never by message text:

- `QuotaRefused`: `batches.create` answered 400 with code `token_limit_exceeded` (Azure's fail-fast
  regions); the file waits and goes again later or elsewhere;
- `CallRefused`: any other 4xx on a call: this attempt cannot go on as it is;
- `openai.AuthenticationError` / `PermissionDeniedError`: fatal, raised as FatalEndpointError;
- connection errors, timeouts, 429 and 5xx: the SDK retries reads a few times; uploads and creates
  are sent once (a retry after a lost response would make a second file or batch); the processor
  tries again at the next check (`TransientCallError`), asking the service first what got through.
  The one exception: an upload or create that could not even connect (refused, unknown or unreachable
  host) never reached the service, so it is tried again at once, with jittered backoff (tenacity), CONNECT_TRIES times.

`--expires-after DAYS` sets `expires_after` on uploads and `output_expires_after` on batches, as
`{"anchor": "created_at", "seconds": N}` on both services; the range differs (EXPIRY_RANGE_DAYS):
OpenAI takes 1 hour to 30 days, Azure 14 to 30 days (and then allows 10,000 batch files, not 500).
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import openai
from openai.types import Batch, FileObject
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from rollkit.net.client import FatalEndpointError
from rollkit.net.endpoints import Endpoint, EndpointConfigError
from rollkit.net.secrets import redact
from rollkit.store.atomic import atomic_write

log = logging.getLogger("rollkit")

QUOTA_CODE = "token_limit_exceeded"
REQUEST_TIMEOUT = 600.0  # uploads of 200 MB files take a while
SDK_RETRIES = 3
LIST_PAGE = 100
CONNECT_TRIES = 8  # about a minute of backoff: long enough for a restarting proxy or a flapping link
CONNECT_BACKOFF, CONNECT_MAX_WAIT = 0.5, 10.0  # first wait, longest wait (seconds)
EXPIRY_RANGE_DAYS = {"openai": (1 / 24, 30.0), "azure": (14.0, 30.0)}
DAY_SECONDS = 86_400


def expiry_problem(kind: str, days: float) -> str | None:
    """Why `--expires-after DAYS` is out of the service's range, or None."""
    low, high = EXPIRY_RANGE_DAYS.get(kind, EXPIRY_RANGE_DAYS["openai"])
    if low <= days <= high:
        return None
    return f"--expires-after {days:g}: {kind} keeps batch files {low * 24:g} hours to {high:g} days" if low < 1 \
        else f"--expires-after {days:g}: {kind} keeps batch files {low:g} to {high:g} days"


# What the operating system says when a connection could not even be made. The SDK raises
# APIConnectionError from its HTTP library's error, which is raised from the socket's own error; these
# can only happen while connecting, never once a request is on its way.
_REFUSED_TO_CONNECT = (ConnectionRefusedError, socket.gaierror)  # nothing listens there; no such host
_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH}


def _never_connected(exc: BaseException) -> bool:
    # the request never left this machine, so sending it again cannot make a second file or batch
    if not isinstance(exc, openai.APIConnectionError) or isinstance(exc, openai.APITimeoutError):
        return False
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, _REFUSED_TO_CONNECT) or (isinstance(cause, OSError) and cause.errno in _UNREACHABLE):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _unanswered(exc: openai.APIError) -> bool:
    """No answer from the service itself: no connection, a timeout, a 5xx or 408 (a 429 is an answer)."""
    if isinstance(exc, openai.APIConnectionError):
        return True
    status = getattr(exc, "status_code", None)
    return status is not None and (status == 408 or status >= 500)


class TransientCallError(Exception):
    """The call did not go through this time (network, 429, 5xx); try again at the next poll."""


class CallRefused(Exception):
    def __init__(self, code: str | None, message: str, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class QuotaRefused(CallRefused):
    """Over the endpoint's enqueued-token quota: wait, then try again."""


def _error_code(exc: openai.APIStatusError) -> str | None:
    if exc.code:
        return exc.code
    body = exc.body if isinstance(exc.body, dict) else {}
    inner = body.get("error") if isinstance(body.get("error"), dict) else body
    return inner.get("code") if isinstance(inner, dict) else None


class BatchService:
    """The calls the processor makes, for one endpoint. Keys stay inside the SDK client."""

    def __init__(self, endpoint: Endpoint, default_model: str | None = None, expires_after_days: float | None = None):
        self.endpoint = endpoint
        self.expiry = None if expires_after_days is None else \
            {"anchor": "created_at", "seconds": round(expires_after_days * DAY_SECONDS)}
        self.files_listed = self.batches_listed = True  # False once the service refused to list them
        kind = endpoint.adapter  # the same adapter the online client uses
        self.client: openai.OpenAI = kind.sdk_client(endpoint, SDK_RETRIES, REQUEST_TIMEOUT)
        if self.client is None:
            raise EndpointConfigError(
                f"endpoint {endpoint.name}: {endpoint.kind} servers have no Batch API; run the packed files "
                "there with `vllm run-batch -i FILE -o OUT --model MODEL` and `map` the outputs")
        self.url, self.model = kind.batch_url, kind.target_model(endpoint, default_model) or ""
        if not self.model:
            raise EndpointConfigError(f"endpoint {endpoint.name}: no model or deployment to run the batches on")
        # Calls that create something are sent once: a retry after a lost response would create a
        # second file or batch. The processor's intent/reconcile step retries them safely instead.
        self.once = self.client.with_options(max_retries=0)
        self.failing_since: float | None = None  # monotonic time of the first failure since the last answer
        self.last_answer: float | None = None

    def down_for(self, now: float) -> float:
        """Seconds this service has not answered while being asked; 0 when it answers."""
        return 0.0 if self.failing_since is None else now - self.failing_since

    @property
    def name(self) -> str:
        return self.endpoint.name

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except openai.APIError as exc:
            self._note(answered=not _unanswered(exc))
            raise self._translated(what, exc) from None
        self._note(answered=True)
        return result

    def _note(self, answered: bool) -> None:
        if answered:
            self.failing_since, self.last_answer = None, time.monotonic()
        elif self.failing_since is None:
            self.failing_since = time.monotonic()

    def _translated(self, what: str, exc: openai.APIError) -> Exception:
        """The processor's exception for an SDK error."""
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            key = self.endpoint.key_env or "the key variable"
            return FatalEndpointError(f"endpoint {self.name}: {what} refused our credentials "
                                      f"(HTTP {exc.status_code}); check {key}")
        if isinstance(exc, openai.RateLimitError | openai.InternalServerError) or \
                not isinstance(exc, openai.APIStatusError):  # connection errors, timeouts, bad bodies
            return TransientCallError(f"{self.name}: {what}: {redact(str(exc))[:300]}")
        if exc.status_code in (408, 409) or exc.status_code >= 500:
            return TransientCallError(f"{self.name}: {what}: HTTP {exc.status_code}")
        code = _error_code(exc)
        kind = QuotaRefused if code == QUOTA_CODE else CallRefused
        return kind(code, f"{self.name}: {what}: HTTP {exc.status_code} {code or ''}: "
                          f"{redact(exc.message)[:300]}", exc.status_code)

    def _send_once(self, what: str, fn, **kwargs):
        """A call that creates something: sent again only when it never connected."""
        retrying = Retrying(retry=retry_if_exception(_never_connected), stop=stop_after_attempt(CONNECT_TRIES),
                            wait=wait_exponential_jitter(multiplier=CONNECT_BACKOFF, max=CONNECT_MAX_WAIT,
                                                         jitter=CONNECT_BACKOFF), reraise=True,
                            before_sleep=lambda state: log.warning("%s: %s could not connect; trying again",
                                                                   self.name, what))
        return self._call(what, lambda: retrying(fn, **kwargs))

    def upload(self, path: Path, filename: str) -> FileObject:
        extra = {} if self.expiry is None else {"expires_after": self.expiry}

        def send() -> FileObject:  # the file is opened afresh for every try
            with open(path, "rb") as handle:
                return self.once.files.create(file=(filename, handle), purpose="batch", **extra)
        return self._send_once("upload", send)

    def find_upload(self, filename: str, size: int) -> FileObject | None:
        """A batch-purpose file with this name and size, if an earlier upload got through. A service
        without files.list (it refuses the call) is warned about once; the file is uploaded again
        (a second copy of a file costs nothing; the batches made from it are what is paid)."""
        if not self.files_listed:
            return None
        try:
            page = self._call("list files", self.client.files.list, purpose="batch")
            items = list(self._all_pages(page, "list files"))
        except CallRefused as exc:
            self.files_listed = False
            log.warning("%s does not list files (%s); an upload cut off by a crash is sent again", self.name, exc)
            return None
        return next((item for item in items if item.filename == filename and item.bytes == size), None)

    def create(self, input_file_id: str, attempt_id: str) -> Batch:
        # metadata names the attempt, so a restart can tell our batch apart on batches.list
        extra = {} if self.expiry is None else {"output_expires_after": self.expiry}
        return self._send_once("create batch", self.once.batches.create, input_file_id=input_file_id,
                               endpoint=self.url, completion_window="24h",
                               metadata={"rollkit_attempt": attempt_id}, **extra)

    def find_batch(self, input_file_id: str, attempt_id: str, known: set[str]) -> Batch | None:
        """A batch made from this input file for this attempt, not yet in the ledger. A service that
        refuses batches.list is warned about once; the batch is then created again (which may run a
        batch cut off by a crash twice, rather than leave its file stuck)."""
        if not self.batches_listed:
            return None
        try:
            page = self._call("list batches", self.client.batches.list, limit=LIST_PAGE)
        except CallRefused as exc:
            self.batches_listed = False
            log.warning("%s does not list batches (%s); a create cut off by a crash is sent again", self.name, exc)
            return None
        for batch in self._all_pages(page, "list batches"):
            tagged = (batch.metadata or {}).get("rollkit_attempt")
            if batch.input_file_id == input_file_id and batch.id not in known and tagged in (None, attempt_id):
                return batch
        return None

    def retrieve(self, batch_id: str) -> Batch:
        return self._call("retrieve batch", self.client.batches.retrieve, batch_id)

    def cancel(self, batch_id: str) -> Batch:
        return self._call("cancel batch", self.client.batches.cancel, batch_id)

    def download(self, file_id: str, dest: Path) -> None:
        """Stream a file's content to `dest` (via a temporary name, so `dest` is whole or absent)."""
        def fetch() -> None:
            with self.client.files.with_streaming_response.content(file_id) as response, \
                    atomic_write(dest, "wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)

        self._call("download", fetch)

    def _all_pages(self, page, what: str) -> Iterator:
        while True:
            yield from page.data
            if not page.has_next_page():
                return
            page = self._call(what, page.get_next_page)
