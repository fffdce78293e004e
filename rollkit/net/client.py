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
- 400/404/422 and content-filter refusals: the record fails with a clear reason, no retry; unless
  the endpoint has not answered yet and a one-line probe is refused the same way: then every record
  would be, and UniformRefusal stops the run (exit 2) with nothing written off (see `refusals`).
- a reply with fewer choices than `n` asked (llama.cpp, Ollama): the endpoint is sent one sample a
  request from then on, and the missing samples are asked with their own seeds (base + i).
- 401/403: the whole run stops; the message names the endpoint and the key's variable, never the key.
Every billable response is appended to the request journal before it is returned, so a restarted
stage replays it instead of paying for it again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type

from rollkit.content.images import image_size
from rollkit.content.tokens import completion_allowance, count_messages
from rollkit.net.endpoints import EndpointPool, EndpointState, env_proxy
from rollkit.net.pricing import usage_cost
from rollkit.net.refusals import FirstWave, RefusalWatch, Signature, probe_body, signature
from rollkit.net.secrets import redact
from rollkit.store.journal import RequestJournal, request_key

DEFAULT_MAX_OUTAGE_SECONDS = 600.0
# The openai SDK's own default: long generations and reasoning models take minutes, and a request
# cut off is paid for and then sent again, so waiting longer costs less than cutting off too soon.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 600.0
DEFAULT_CUT_OFF_RESENDS = 2  # with the timeout doubled each time: 600 s, then 1200 s, then 2400 s
CONNECT_TIMEOUT_SECONDS = 30.0  # a server that does not even take the connection is down, not slow
PROBE_TIMEOUT_SECONDS = 10.0
PROBE_FRESH_SECONDS = 5.0  # cut-offs this close together share one probe
MAX_RETRY_WAIT_SECONDS = 30.0
log = logging.getLogger("rollkit.net.client")


class FatalEndpointError(Exception):
    """The endpoint refused our credentials: continuing would only fail every request."""


class UniformRefusal(FatalEndpointError):
    """The endpoint refuses the request itself (unknown model, a refused parameter, a budget over
    the context), so it would refuse every record: stop, write nothing off (exit 2)."""


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
    """The server refused the request; `refusal` is (status, code, its message), `state` the endpoint."""

    def __init__(self, reason: str, message: str, refusal: Signature | None = None,
                 state: EndpointState | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.refusal = refusal
        self.state = state


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
    # (reason, message) of the samples after `texts` that could not be had (asked alone, they failed)
    shortfall: tuple[str, str] | None = None
    # Log-probabilities as the server sent them, for callers that asked (stages/prm): each choice's
    # `logprobs`, and vLLM's `prompt_logprobs` (with `prompt_token_ids` when it sends them).
    choice_logprobs: list = field(default_factory=list, repr=False)
    prompt_logprobs: dict | None = field(default=None, repr=False)

    @property
    def text(self) -> str | None:
        return self.texts[0] if self.texts else None

    def split(self, expected: int) -> list[ChatResult]:
        """One result per choice of a reply asked for with `n`, each judged on its own; a failed
        reply fails them all, and samples that could not be had fail with the shortfall's reason."""
        if not self.ok:
            return [self] * expected
        parts = [result_from_response({"model": self.model, "choices": [
            {"index": 0, "message": {"content": text}, "finish_reason": reason}]}, self.replayed)
            for text, reason in zip(self.texts, self.finish_reasons, strict=True)]
        reason, message = self.shortfall or ("n_ignored", "the server sent fewer choices than n asked for")
        missing = ChatResult(False, reason=reason, model=self.model, message=message)
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
    reasoning_tokens: int = 0  # hidden reasoning, billed as completion tokens (already in them)
    cost_usd: float = 0.0  # list price of the tokens of models rollkit knows the price of
    reasoning_cost_usd: float = 0.0  # the reasoning tokens' share of it
    truncated: int = 0  # answers kept though they stopped at the token budget (finish_reason length)
    n_ignored: int = 0  # samples asked alone because the server sent fewer choices than n


def result_from_response(data: dict, replayed: bool = False, per_choice: bool = False) -> ChatResult:
    """Turn a chat.completion body into a result; filtered and empty replies are failures.

    An answer cut off at the token budget (`finish_reason: "length"`) is still an answer: it is kept
    with its finish reason, and never takes its siblings down with it; the caller decides what a
    cut-off answer is worth (the judge scores it as it stands, Monte-Carlo finds no answer in it).
    With `per_choice`, the caller judges each choice by its finish reason, so the result fails only
    when every choice was filtered.
    """
    choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
    texts = [((c.get("message") or {}).get("content") or "") for c in choices]
    reasons = [c.get("finish_reason") for c in choices]
    result = ChatResult(True, texts, reasons, model=data.get("model"), usage=data.get("usage"),
                        replayed=replayed, choice_logprobs=[c.get("logprobs") for c in choices])
    if data.get("prompt_logprobs") is not None:
        result.prompt_logprobs = {name: data.get(name) for name in ("prompt_logprobs", "prompt_token_ids")}
    if per_choice:
        if all(reason == "content_filter" for reason in reasons):
            result.ok, result.reason, result.message = False, "content_filter", "every choice was filtered"
    elif "content_filter" in reasons:
        result.ok, result.reason, result.message = False, "content_filter", "the reply was filtered"
    elif not any(text.strip() for text in texts) and "length" in reasons:
        # a reasoning model can spend the whole budget thinking and have nothing left to answer with
        result.ok, result.reason = False, "length"
        result.message = "the token budget ran out before any answer; raise --max-tokens"
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
                 redo_unusable: bool = False, cut_off_resends: int = DEFAULT_CUT_OFF_RESENDS,
                 reasoning_effort: str | None = None) -> None:
        self.pool = pool
        self.journal = journal
        self.stats = RequestStats()
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_outage = max_outage
        self.redo_unusable = redo_unusable
        self.timeout = timeout
        self.cut_off_resends = cut_off_resends
        self.reasoning_effort = reasoning_effort  # --reasoning-effort: in every body, so in its journal key
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, CONNECT_TIMEOUT_SECONDS))
        self._probes: dict[str, tuple[float, asyncio.Task]] = {}  # endpoint name: (started, probe)
        self._slots = slots or asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, tuple] = {}
        pool.limit_in_flight(concurrency)
        self._refusals: dict[str, RefusalWatch] = {}  # endpoint name -> whether its refusals are the records'
        self._first_wave = FirstWave()

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

    async def complete(self, body: dict, sample_index: int = 0, *, per_choice: bool = False,
                       trim: Callable[[dict], dict] | None = None) -> ChatResult:
        """One chat completion, replayed from the journal when it was already paid for.

        `per_choice`: see result_from_response; a reply with some filtered choices is then usable
        instead of failing as a whole. Every billable reply is journaled, usable or not: it was paid
        for either way. A body with `n` gets its n samples even from a server that ignores `n`.
        `trim`: what of a fresh reply to journal and read (prm.py keeps two prompt log-probabilities
        a position of the twenty sent: a journal of whole replies would grow by ~1 MB a solution)."""
        if self.reasoning_effort:
            body = {**body, "reasoning_effort": self.reasoning_effort}
        asked = int(body.get("n") or 1)
        if asked > 1 and not any(state.endpoint.supports_n for state in self.pool.states):
            result = await self._fill_samples(body, sample_index, ChatResult(True), per_choice)
        else:
            result = await self._complete_one(body, sample_index, per_choice, trim)
            if result.ok and len(result.texts) < asked:
                result = await self._fill_samples(body, sample_index, result, per_choice)
        if result.ok:
            self.stats.truncated += result.finish_reasons.count("length")
        return result

    async def _fill_samples(self, body: dict, sample_index: int, partial: ChatResult, per_choice: bool) -> ChatResult:
        """`partial` plus the samples it lacks of an `n` request, each asked alone with its own seed
        (child i of `seed` is `seed + i`, vLLM's rule, as `rollkit.net.samples` sends without `n`) and
        its own journal key; the first that fails ends the list, so sample i stays at index i."""
        asked, have = int(body["n"]), len(partial.texts)
        single = {name: value for name, value in body.items() if name != "n"}
        seed = body.get("seed")
        bodies = [{**single, "seed": seed + i} if seed is not None else single for i in range(have, asked)]
        self.stats.n_ignored += len(bodies)
        results = await asyncio.gather(*(self._complete_one(one, sample_index + i, per_choice)
                                         for i, one in enumerate(bodies, have)))
        merged = ChatResult(True, list(partial.texts), list(partial.finish_reasons), model=partial.model,
                            usage=dict(partial.usage or {}), replayed=partial.replayed)
        for result in results:
            if not result.ok:
                merged.shortfall = (result.reason or "failed", f"asked alone: {result.message}")
                break
            merged.texts += result.texts[:1]
            merged.finish_reasons += result.finish_reasons[:1]
            merged.model = merged.model or result.model
            for name in ("prompt_tokens", "completion_tokens"):
                merged.usage[name] = int(merged.usage.get(name) or 0) + int((result.usage or {}).get(name) or 0)
        return merged if merged.texts else results[0]

    async def _complete_one(self, body: dict, sample_index: int, per_choice: bool,
                            trim: Callable[[dict], dict] | None = None) -> ChatResult:
        key = request_key(body, sample_index)
        if self.journal is not None:
            stored = self.journal.get(key)
            if stored is not None:
                result = result_from_response(stored, replayed=True, per_choice=per_choice)
                if result.ok or not self.redo_unusable:
                    self.stats.replayed += 1
                    return result
        cost = count_messages(body["messages"], body.get("model"), image_size) + completion_allowance(body)
        await self._first_wave.enter()
        try:
            data = await self._send_with_retries(body, cost)
        except (TransientError, PermanentError) as exc:
            if isinstance(exc, PermanentError):
                await self._check_refusal(exc, body)
            self.stats.failed += 1
            return ChatResult(False, reason=exc.reason, message=redact(str(exc)))
        finally:
            self._first_wave.leave()
        data = trim(data) if trim else data
        if self.journal is not None:
            self.journal.put(key, data)
        return result_from_response(data, per_choice=per_choice)

    async def _check_refusal(self, refused: PermanentError, body: dict) -> None:
        """Raise UniformRefusal when the endpoint refuses the request itself, not this record."""
        state = refused.state
        if refused.refusal is None or state is None or refused.reason == "content_filter":
            return
        watch = self._refusals.setdefault(state.endpoint.name, RefusalWatch())
        if watch.settled:
            return
        self._first_wave.refused = True
        if await watch.is_uniform(refused.refusal, lambda: self._probe_refusal(state, body)):
            status, code, message = refused.refusal[:3]
            raise UniformRefusal(
                f"{state.endpoint.describe()} refuses the request itself, so it would refuse every record: "
                f"HTTP {status} {code or ''}: {message}. Nothing was written off; fix the command and run "
                "it again")
        self._first_wave.refused = False
        self._first_wave.open()

    async def _probe_refusal(self, state: EndpointState, body: dict) -> Signature | None:
        """Ask `body`'s request with a one-line prompt; the refusal it gets, or None."""
        self.stats.sent += 1
        try:
            async with self._request(state, "POST", state.endpoint.chat_url(),
                                     data=self._payload(state, probe_body(body))) as response:
                raw, status = await response.read(), response.status
        except (TimeoutError, aiohttp.ClientError):
            return None
        if status < 400 or status == 429 or status >= 500:
            return None
        return signature(status, raw)

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
        payload = self._payload(state, body)
        self.stats.sent += 1
        try:
            async with self._request(state, "POST", state.endpoint.chat_url(), data=payload,
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
        self._note_reply(state, body, data)
        return data

    def _request(self, state: EndpointState, method: str, url: str, **options):
        """A request to `state`'s endpoint with its headers and proxy (every call goes through here)."""
        proxy, proxy_auth = self._proxies[state.endpoint.name]
        return self._session.request(method, url, headers=state.endpoint.headers(), proxy=proxy,
                                     proxy_auth=proxy_auth, **options)

    @staticmethod
    def _payload(state: EndpointState, body: dict) -> bytes:
        return json.dumps(state.endpoint.shape_body(body), ensure_ascii=False).encode("utf-8")

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
        seconds = min(PROBE_TIMEOUT_SECONDS, self.timeout)
        try:
            async with self._request(state, "GET", endpoint.adapter.models_url(endpoint),
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
            raise PermanentError(reason, f"{endpoint.name}: HTTP {status} {code or ''} {message}".strip(),
                                 signature(status, raw), state)
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
        completion = int(usage.get("completion_tokens") or 0)
        reasoning = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
        self.stats.reasoning_tokens += reasoning
        price = usage_cost(state.endpoint.adapter.target_model(state.endpoint, body.get("model")) or "",
                           prompt, completion, reasoning)
        if price is not None:
            self.stats.cost_usd += price[0]
            self.stats.reasoning_cost_usd += price[1]

    def _note_reply(self, state: EndpointState, body: dict, data: dict) -> None:
        """What an answer shows about its endpoint: it answers (its refusals are the records' own),
        and whether it honours `n` (if not, it is sent one sample a request from now on)."""
        watch = self._refusals.get(state.endpoint.name)
        if watch is None:
            watch = self._refusals[state.endpoint.name] = RefusalWatch()
        watch.answered()
        self._first_wave.open()
        asked, got = int(body.get("n") or 1), len(data["choices"])
        if got < asked and state.endpoint.supports_n:
            state.endpoint.supports_n = False
            log.warning("%s ignores n (asked %d choices, got %d): sending it one sample a request from now "
                        "on, each with its own seed", state.where(), asked, got)
