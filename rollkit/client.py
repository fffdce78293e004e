"""One async chat-completion call: journal replay, budget, retries, error classes, usage.

Error classes come from status codes and exception types, never from message text:
- 429: the endpoint pauses for `retry-after-ms`/`retry-after` and its meter is emptied (pacing lives
  in `ratelimit`); the request goes again ahead of new ones and no attempt is counted.
- connection refused or reset, DNS failures, connect timeouts, 5xx: transient. The request retries with
  capped exponential backoff and jitter and the endpoint backs off on its own, while the others
  carry on. When every endpoint has been down for `max_outage` seconds, OutageError stops the run
  (exit 3) and the records not done stay undone, for a plain rerun.
- a request cut off by --request-timeout after the server took it is not evidence of an outage: the
  server may be working on it (a long answer, a reasoning model) and may bill it. A cheap probe
  (`GET` the model list) tells slow from down; only a server that does not answer the probe counts
  as unreachable. A slow one gets the request again with twice the timeout, at most
  `cut_off_resends` times, then the record fails as `cut_off`. The summary counts both.
- malformed bodies: retried; a reply that stays unusable fails the record after `max_attempts`.
- 400/404/422 and content-filter refusals: the record fails with a clear reason, no retry.
- 401/403: the whole run stops; the message names the endpoint and the key's variable, never the key.
Every billable response is appended to the request journal before it is returned, so a restarted
stage replays it instead of paying for it again.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type

from .endpoints import EndpointPool, EndpointState, env_proxy
from .images import image_size
from .journal import RequestJournal, request_key
from .secrets import redact
from .tokens import completion_allowance, count_messages

DEFAULT_MAX_OUTAGE_SECONDS = 600.0
# The openai SDK's own default: long generations and reasoning models take minutes, and a request
# cut off is paid for and then sent again, so waiting longer costs less than cutting off too soon.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 600.0
DEFAULT_CUT_OFF_RESENDS = 2  # with the timeout doubled each time: 600 s, then 1200 s, then 2400 s
CONNECT_TIMEOUT_SECONDS = 30.0  # a server that does not even take the connection is down, not slow
PROBE_TIMEOUT_SECONDS = 10.0
PROBE_FRESH_SECONDS = 5.0  # cut-offs this close together share one probe
MAX_RETRY_WAIT_SECONDS = 30.0


class FatalEndpointError(Exception):
    """The endpoint refused our credentials: continuing would only fail every request."""


class OutageError(Exception):
    """Every endpoint has been unreachable for --max-outage seconds: stop, leaving the rest undone."""


class TransientError(Exception):
    """Worth another try. `counts`: against the request's attempts (not while the endpoint is down);
    `endpoint_answers`: how many answers the endpoint had given when this failed."""

    def __init__(self, reason: str, message: str, counts: bool = True, endpoint_answers: int = 0) -> None:
        super().__init__(message)
        self.reason = reason
        self.counts = counts
        self.endpoint_answers = endpoint_answers


class CutOffError(TransientError):
    """Cut off by our timeout after the server took the request: it may have done (and billed) the
    work. `server_up`: the probe found the server answering, so it was slow, not down."""

    def __init__(self, message: str, server_up: bool, counts: bool = True, endpoint_answers: int = 0) -> None:
        super().__init__("cut_off", message, counts, endpoint_answers)
        self.server_up = server_up


class PermanentError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class ChatResult:
    ok: bool
    texts: list[str] = field(default_factory=list)
    finish_reasons: list[str | None] = field(default_factory=list)
    reason: str | None = None
    message: str | None = None
    model: str | None = None
    usage: dict | None = None
    replayed: bool = False

    @property
    def text(self) -> str | None:
        return self.texts[0] if self.texts else None

    def split(self, expected: int) -> list[ChatResult]:
        """One result per choice of a reply asked for with `n`, each judged on its own; a failed
        reply fails them all, and choices the server did not send fail as `n_ignored`."""
        if not self.ok:
            return [self] * expected
        parts = [result_from_response({"model": self.model, "choices": [
            {"index": 0, "message": {"content": text}, "finish_reason": reason}]}, self.replayed)
            for text, reason in zip(self.texts, self.finish_reasons, strict=True)]
        missing = ChatResult(False, reason="n_ignored", model=self.model,
                             message="the server sent fewer choices than n asked for; use --no-n")
        return (parts + [missing] * expected)[:expected]


@dataclass
class RequestStats:
    """Every counter the summary shows, named, updated in one place each."""

    sent: int = 0
    replayed: int = 0
    rate_limited: int = 0
    retries: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens the server says it served from its prefix cache
    cut_off: int = 0  # requests our timeout cut off after the server took them: possibly billed
    resent_after_cut_off: int = 0  # of those, sent again (with a longer timeout)


def result_from_response(data: dict, replayed: bool = False, per_choice: bool = False) -> ChatResult:
    """Turn a chat.completion body into a result; refusals, cut-offs and empty replies are failures.

    With `per_choice`, the caller judges each choice by its finish reason (Monte-Carlo samples: a
    cut-off sample simply reached no answer), so the result fails only when every choice was filtered.
    """
    choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
    texts = [((c.get("message") or {}).get("content") or "") for c in choices]
    reasons = [c.get("finish_reason") for c in choices]
    result = ChatResult(True, texts, reasons, model=data.get("model"), usage=data.get("usage"),
                        replayed=replayed)
    if per_choice:
        if all(reason == "content_filter" for reason in reasons):
            result.ok, result.reason, result.message = False, "content_filter", "every choice was filtered"
    elif "content_filter" in reasons:
        result.ok, result.reason, result.message = False, "content_filter", "the reply was filtered"
    elif "length" in reasons:
        result.ok, result.reason = False, "length"
        result.message = "the reply hit the token limit; raise --max-tokens"
    elif not any(text.strip() for text in texts):
        result.ok, result.reason, result.message = False, "empty", "the reply was empty"
    return result


def _error_fields(raw: bytes) -> tuple[str | None, str]:
    try:
        error = json.loads(raw).get("error") or {}
        return error.get("code"), str(error.get("message") or "")[:300]
    except (ValueError, AttributeError):
        return None, raw[:200].decode("utf-8", "replace")


def _limited_by(raw: bytes) -> str | None:
    """`requests` or `tokens` from the 429 body's error type (OpenAI's shape), else None."""
    try:
        kind = (json.loads(raw).get("error") or {}).get("type")
    except (ValueError, AttributeError):
        return None
    return kind if kind in ("requests", "tokens") else None


class ChatClient:
    """Sends chat requests through an EndpointPool; use as `async with ChatClient(...) as client`.

    `slots` bounds the requests in flight; the clients of one stage share it, so a kill can cost at
    most `concurrency` requests whatever the stage's roles. `redo_unusable` (--retry-failed) asks
    again where the journal holds a reply that could not be used (cut off, filtered).
    `timeout` is per request; a request cut off on a server that is up is resent with twice the
    timeout, at most `cut_off_resends` times."""

    def __init__(self, pool: EndpointPool, journal: RequestJournal | None, *, concurrency: int = 16,
                 timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS, max_attempts: int = 5, backoff: float = 1.0,
                 max_outage: float = DEFAULT_MAX_OUTAGE_SECONDS, slots: asyncio.Semaphore | None = None,
                 redo_unusable: bool = False, cut_off_resends: int = DEFAULT_CUT_OFF_RESENDS) -> None:
        self.pool = pool
        self.journal = journal
        self.stats = RequestStats()
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_outage = max_outage
        self.redo_unusable = redo_unusable
        self.timeout = timeout
        self.cut_off_resends = cut_off_resends
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, CONNECT_TIMEOUT_SECONDS))
        self._probes: dict[str, tuple[float, asyncio.Task]] = {}  # endpoint name: (started, probe)
        self._slots = slots or asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, tuple] = {}
        pool.limit_in_flight(concurrency)

    async def __aenter__(self) -> ChatClient:
        connector = aiohttp.TCPConnector(limit=self._concurrency + 4, ttl_dns_cache=300)
        # HTTPS_PROXY and friends are honoured (clusters often need them for remote APIs), but never
        # for this machine's own servers: the seeds told users to set NO_PROXY by hand for those.
        self._proxies = {s.endpoint.name: env_proxy(s.endpoint.chat_url()) for s in self.pool.states}
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._session:
            await self._session.close()

    async def complete(self, body: dict, sample_index: int = 0, *, per_choice: bool = False) -> ChatResult:
        """One chat completion, replayed from the journal when it was already paid for.

        `per_choice`: see result_from_response; a reply with some cut-off or filtered choices is
        then usable instead of failing as a whole. Every billable reply is journaled, usable or not:
        it was paid for either way."""
        key = request_key(body, sample_index)
        if self.journal is not None:
            stored = self.journal.get(key)
            if stored is not None:
                result = result_from_response(stored, replayed=True, per_choice=per_choice)
                if result.ok or not self.redo_unusable:
                    self.stats.replayed += 1
                    return result
        cost = count_messages(body["messages"], body.get("model"), image_size) + completion_allowance(body)
        try:
            data = await self._send_with_retries(body, cost)
        except (TransientError, PermanentError) as exc:
            self.stats.failed += 1
            return ChatResult(False, reason=exc.reason, message=redact(str(exc)))
        if self.journal is not None:
            self.journal.put(key, data)
        return result_from_response(data, per_choice=per_choice)

    async def _send_with_retries(self, body: dict, cost: float) -> dict:
        """Transient failures retry with jittered exponential backoff. Only those of an endpoint
        that is otherwise answering count against `max_attempts`; while every endpoint is down the
        request waits, until the outage has lasted `max_outage` seconds and the run stops."""
        counted, answers_seen = [0], [None]
        timeout, cut_offs = [self.timeout], [0]
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=lambda _state: counted[0] >= self.max_attempts,
            # The wait grows with the attempts that count: while an endpoint is down its own pause
            # spaces the tries, so a request is ready to go the moment the endpoint is back.
            wait=lambda _state: self._retry_wait(counted[0]),
            before_sleep=self._count_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    return await self._send_until_admitted(body, cost, attempt.retry_state.attempt_number > 1,
                                                           timeout[0])
                except CutOffError as exc:
                    cut_offs[0] += 1
                    if exc.server_up:
                        timeout[0] = self._after_slow_cut_off(exc, cut_offs[0], timeout[0])
                        self.stats.resent_after_cut_off += 1
                        raise
                    self._count_failure(exc, counted, answers_seen)
                    self.stats.resent_after_cut_off += counted[0] < self.max_attempts
                    raise
                except TransientError as exc:
                    self._count_failure(exc, counted, answers_seen)
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _count_failure(self, exc: TransientError, counted: list[int], answers_seen: list) -> None:
        """It counts when the endpoint answered other requests since this one last failed (so the
        trouble is this request), or on a first failure while the endpoint is not failing in a row;
        never while it is simply down. Stops the run once the outage has lasted too long."""
        previous, answers_seen[0] = answers_seen[0], exc.endpoint_answers
        counted[0] += exc.counts if previous is None else exc.endpoint_answers > previous
        self._check_outage()

    def _after_slow_cut_off(self, exc: CutOffError, cut_offs: int, timeout: float) -> float:
        """The timeout for sending again a request cut off on a server that is up (the answer takes
        longer than we waited), or PermanentError once it was cut off `cut_off_resends` times:
        each cut-off may have been billed, so resending is bounded, never a silent loop."""
        if cut_offs > self.cut_off_resends:
            raise PermanentError("cut_off", f"{exc}; cut off {cut_offs} times, the last after {timeout:g} s, "
                                 f"each possibly billed; not sent again (raise --request-timeout)") from exc
        return 2 * timeout

    def _retry_wait(self, counted: int) -> float:
        return min(MAX_RETRY_WAIT_SECONDS, self.backoff * 2 ** max(0, counted - 1) + random.uniform(0, self.backoff))

    def _check_outage(self) -> None:
        down = self.pool.outage_seconds()
        if down >= self.max_outage:
            raise OutageError(f"every endpoint has been unreachable for {down:.0f} s "
                              f"(--max-outage {self.max_outage:g}): {self.pool.describe_down()}")

    def _count_retry(self, _state) -> None:
        self.stats.retries += 1

    async def _send_until_admitted(self, body: dict, cost: float, resent: bool, timeout: float) -> dict:
        """Send, and after a 429 wait for the endpoint's pause and send again, uncounted and ahead
        of requests that never left."""
        async with self._slots:
            while True:
                state, marks = await self.pool.acquire(cost, priority=0 if resent else 1)
                try:
                    data = await self._post(state, body, cost, marks, timeout)
                finally:
                    self.pool.release(state)
                if data is not None:
                    return data
                resent = True

    async def _post(self, state: EndpointState, body: dict, cost: float, marks: tuple,
                    timeout: float) -> dict | None:
        endpoint = state.endpoint
        payload = json.dumps(endpoint.shape_body(body), ensure_ascii=False).encode("utf-8")
        self.stats.sent += 1
        try:
            proxy, proxy_auth = self._proxies[endpoint.name]
            async with self._session.post(endpoint.chat_url(), data=payload, headers=endpoint.headers(),
                                          proxy=proxy, proxy_auth=proxy_auth,
                                          timeout=self._request_timeout(timeout)) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        except aiohttp.ServerTimeoutError as exc:  # no connection in time: the server never took it
            raise self._unreachable(state, "timeout", "no connection in time") from exc
        except TimeoutError as exc:  # cut off after the server took it: slow or down, a probe tells
            self.stats.cut_off += 1
            raise await self._cut_off(state, timeout) from exc
        except aiohttp.ClientError as exc:
            raise self._unreachable(state, "connection", type(exc).__name__) from exc
        has_meter = state.pacer.observe(headers, marks, cost)
        if status == 429:
            self.stats.rate_limited += 1
            state.rate_limited += 1
            state.pacer.on_429(marks[0], state.pacer.asked_pause(headers), _limited_by(raw))
            return None
        data = self._check_status(state, status, raw)
        state.pacer.on_success()
        self._count_usage(state, data.get("usage") or {}, body, cost, has_meter)
        return data

    def _request_timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        if seconds == self.timeout:
            return self._timeout
        return aiohttp.ClientTimeout(total=seconds, sock_connect=self._timeout.sock_connect)

    async def _cut_off(self, state: EndpointState, timeout: float) -> CutOffError:
        what = f"cut off after {timeout:g} s (possibly billed)"
        if await self._probe(state):
            state.record_alive()
            return CutOffError(f"{state.where()}: {what}; the server answers, so it is slow, not down", True,
                               endpoint_answers=state.answers)
        down = self._unreachable(state, "cut_off", f"{what}, and the server does not answer a probe")
        return CutOffError(str(down), False, down.counts, down.endpoint_answers)

    async def _probe(self, state: EndpointState) -> bool:
        """Whether the server answers a cheap request (its model list) at all; cut-offs close
        together share one probe."""
        now = asyncio.get_running_loop().time()
        started, probe = self._probes.get(state.endpoint.name, (-1e18, None))
        if probe is None or (probe.done() and now - started > PROBE_FRESH_SECONDS):
            probe = asyncio.ensure_future(self._ask_model_list(state))
            self._probes[state.endpoint.name] = (now, probe)
        return await asyncio.shield(probe)

    async def _ask_model_list(self, state: EndpointState) -> bool:
        endpoint = state.endpoint
        proxy, proxy_auth = self._proxies[endpoint.name]
        seconds = min(PROBE_TIMEOUT_SECONDS, self.timeout)
        try:
            async with self._session.get(endpoint.adapter.models_url(endpoint), headers=endpoint.headers(),
                                         proxy=proxy, proxy_auth=proxy_auth,
                                         timeout=aiohttp.ClientTimeout(total=seconds)) as response:
                await response.read()
                return response.status < 500  # any answer of its own, even a 404, shows it is up
        except (aiohttp.ClientError, TimeoutError):
            return False

    def _unreachable(self, state: EndpointState, reason: str, what: str) -> TransientError:
        state.record_failure()
        return TransientError(reason, f"{state.where()}: {what}", counts=not state.in_outage(),
                              endpoint_answers=state.answers)

    def _check_status(self, state: EndpointState, status: int, raw: bytes) -> dict:
        endpoint = state.endpoint
        if status in (401, 403):
            raise FatalEndpointError(
                f"endpoint {endpoint.describe()} refused the credentials (HTTP {status}); "
                f"check the key in the environment variable {endpoint.key_env or '(none set)'}")
        if status >= 500 or status in (408, 409):
            raise self._unreachable(state, "server_error", f"HTTP {status}")
        if status >= 400:
            code, message = _error_fields(raw)
            reason = endpoint.adapter.error_reason(status, code)
            raise PermanentError(reason, f"{endpoint.name}: HTTP {status} {code or ''} {message}".strip())
        try:
            data = json.loads(raw)
            if not isinstance(data.get("choices"), list) or not data["choices"]:
                raise ValueError("no choices")
        except (ValueError, AttributeError) as exc:
            # The server is up and answered: this counts against the request, whatever the streak.
            state.answers += 1
            raise TransientError("malformed", f"{endpoint.name}: malformed reply ({exc})",
                                 endpoint_answers=state.answers) from exc
        state.record_success()
        return data

    def _count_usage(self, state: EndpointState, usage: dict, body: dict, cost: float, has_meter: bool) -> None:
        prompt = int(usage.get("prompt_tokens") or 0)
        self.stats.prompt_tokens += prompt
        self.stats.completion_tokens += int(usage.get("completion_tokens") or 0)
        self.stats.cached_tokens += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        if prompt:
            state.pacer.on_usage(cost - completion_allowance(body), prompt, has_meter)
