"""One async chat-completion call: journal replay, `n` fill-in, retries, outages, stats.

The client orchestrates; the parts are each their own module: replies and their results
(`replies`), the error classes (`errors`), the gates a request passes (`admission`), one exchange
with one endpoint and how its outcome is classified (`exchange`), and each endpoint's live state,
its pacing, ramp, refusal verdict and health (`endpoint_state`). What the client does with each
outcome:
- 429: the endpoint pauses for `retry-after-ms`/`retry-after` and its meter is emptied; the request
  goes again ahead of new ones and no attempt is counted.
- connection refused or reset, DNS failures, connect timeouts, 5xx: transient. The request retries with
  capped exponential backoff and jitter and the endpoint backs off on its own, while the others
  carry on. When every endpoint has been down for `max_outage` seconds, OutageError stops the run
  (exit 3) and the records not done stay undone, for a plain rerun.
- a request cut off by --request-timeout after the server took it is not evidence of an outage: the
  server may be working on it (a long answer, a reasoning model) and may bill it. A probe tells
  slow from down; only a server that does not answer the probe counts as unreachable. A slow one
  gets the request again with twice the timeout, at most `cut_off_resends` times, then the record
  fails as `cut_off`. The summary counts both.
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
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type

from rollkit.content.images import image_size
from rollkit.content.tokens import count_messages
from rollkit.net.admission import Admission
from rollkit.net.endpoint_state import EndpointState
from rollkit.net.endpoints import EndpointPool
from rollkit.net.errors import (
    CutOffError,
    FatalEndpointError,
    OutageError,
    PermanentError,
    TransientError,
    UniformRefusal,
)
from rollkit.net.exchange import Exchange
from rollkit.net.pricing import usage_cost
from rollkit.net.replies import ChatResult, merge_samples, result_from_response
from rollkit.net.secrets import redact
from rollkit.store.journal import RequestJournal, request_key

__all__ = ["ChatClient", "ChatResult", "CutOffError", "FatalEndpointError", "OutageError", "PermanentError",
           "RequestStats", "TransientError", "UniformRefusal", "result_from_response"]

DEFAULT_MAX_OUTAGE_SECONDS = 600.0
# The openai SDK's own default: long generations and reasoning models take minutes, and a request
# cut off is paid for and then sent again, so waiting longer costs less than cutting off too soon.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 600.0
DEFAULT_CUT_OFF_RESENDS = 2  # with the timeout doubled each time: 600 s, then 1200 s, then 2400 s
MAX_RETRY_WAIT_SECONDS = 30.0
log = logging.getLogger("rollkit.net.client")


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

    def count(self, name: str) -> None:
        setattr(self, name, getattr(self, name) + 1)

    def add_usage(self, usage: dict, model: str) -> None:
        """The tokens of one reply, and their list price when the model's price is known."""
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        reasoning = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cached_tokens += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        self.reasoning_tokens += reasoning
        price = usage_cost(model, prompt, completion, reasoning)
        if price is not None:
            self.cost_usd += price[0]
            self.reasoning_cost_usd += price[1]


@dataclass
class _Tries:
    """What the tries of one request have met so far."""
    timeout: float  # doubled after each cut-off on a server that is up
    counted: int = 0  # failures that count against max_attempts
    answers_seen: int | None = None  # the endpoint's answers when this request last failed
    cut_offs: int = 0


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
        self.admission = Admission(pool, concurrency, slots)
        self._session: aiohttp.ClientSession | None = None
        self._exchange: Exchange | None = None

    async def __aenter__(self) -> ChatClient:
        Exchange.find_proxies(self.pool.states)
        self._session = aiohttp.ClientSession(connector=self.admission.connector(),
                                              timeout=Exchange.session_timeout(self.timeout))
        self._exchange = Exchange(self._session, self.timeout, self.stats.count)
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
        return merge_samples(partial, list(results))

    async def _complete_one(self, body: dict, sample_index: int, per_choice: bool,
                            trim: Callable[[dict], dict] | None = None) -> ChatResult:
        key = request_key(body, sample_index) if self.journal is not None else None
        if key is not None:
            stored = self.journal.get(key)
            if stored is not None:
                result = result_from_response(stored, replayed=True, per_choice=per_choice)
                if result.ok or not self.redo_unusable:
                    self.stats.replayed += 1
                    return result
        prompt_tokens = count_messages(body["messages"], body.get("model"), image_size)
        try:
            data = await self._send_with_retries(body, prompt_tokens)
        except (TransientError, PermanentError) as exc:
            if isinstance(exc, PermanentError):
                await self._check_refusal(exc, body)
            self.stats.failed += 1
            return ChatResult(False, reason=exc.reason, message=redact(str(exc)))
        data = trim(data) if trim else data
        if key is not None:
            self.journal.put(key, data)
        return result_from_response(data, per_choice=per_choice)

    async def _check_refusal(self, refused: PermanentError, body: dict) -> None:
        """Raise UniformRefusal when the endpoint refuses the request itself, not this record."""
        state = refused.state
        if refused.refusal is None or state is None or refused.reason == "content_filter" or state.verdict_settled:
            return
        if await state.is_uniform(refused.refusal, lambda: self._exchange.probe_refusal(state, body)):
            status, code, message = refused.refusal[:3]
            raise UniformRefusal(
                f"{state.endpoint.describe()} refuses the request itself, so it would refuse every record: "
                f"HTTP {status} {code or ''}: {message}. Nothing was written off; fix the command and run "
                "it again")

    async def _send_with_retries(self, body: dict, prompt_tokens: float) -> dict:
        """Transient failures retry with jittered exponential backoff. Only those of an endpoint
        that is otherwise answering count against `max_attempts`; while every endpoint is down the
        request waits, until the outage has lasted `max_outage` seconds and the run stops.

        The first try goes without tenacity: most requests succeed at once, and its bookkeeping
        per attempt cost as much CPU as the rest of the client's own work on a request."""
        tries = _Tries(self.timeout)
        try:
            return await self._try(body, prompt_tokens, tries, resent=False)
        except TransientError:
            if tries.counted >= self.max_attempts:
                raise
        self._count_retry(None)
        await asyncio.sleep(self._retry_wait(tries.counted))
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=lambda _state: tries.counted >= self.max_attempts,
            # The wait grows with the attempts that count: while an endpoint is down its own pause
            # spaces the tries, so a request is ready to go the moment the endpoint is back.
            wait=lambda _state: self._retry_wait(tries.counted),
            before_sleep=self._count_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._try(body, prompt_tokens, tries, resent=True)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _try(self, body: dict, prompt_tokens: float, tries: _Tries, resent: bool) -> dict:
        """One try; a failure is counted (or not) in `tries` before it is raised."""
        try:
            return await self._send(body, prompt_tokens, resent, tries.timeout)
        except CutOffError as exc:
            tries.cut_offs += 1
            if exc.server_up:
                tries.timeout = self._after_slow_cut_off(exc, tries.cut_offs, tries.timeout)
                self.stats.resent_after_cut_off += 1
                raise
            self._count_failure(exc, tries)
            self.stats.resent_after_cut_off += tries.counted < self.max_attempts
            raise
        except TransientError as exc:
            self._count_failure(exc, tries)
            raise

    async def _send(self, body: dict, prompt_tokens: float, resent: bool, timeout: float) -> dict:
        """Through every gate (`admission`), then one exchange; what an answer shows is noted."""
        async def post(state: EndpointState, cost: float, marks: tuple) -> dict | None:
            data = await self._exchange.post(state, body, prompt_tokens, cost, marks, timeout)
            if data is not None:
                self._note_answer(state, body, data)
            return data
        return await self.admission.send(prompt_tokens, body, resent, post)

    def _count_failure(self, exc: TransientError, tries: _Tries) -> None:
        """It counts when the endpoint answered other requests since this one last failed (so the
        trouble is this request), or on a first failure while the endpoint is not failing in a row;
        never while it is simply down. Stops the run once the outage has lasted too long."""
        previous, tries.answers_seen = tries.answers_seen, exc.endpoint_answers
        tries.counted += exc.counts if previous is None else exc.endpoint_answers > previous
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

    def _note_answer(self, state: EndpointState, body: dict, data: dict) -> None:
        """An answer's usage and price, and whether its endpoint honours `n` (if not, it is sent one
        sample a request from now on)."""
        endpoint = state.endpoint
        self.stats.add_usage(data.get("usage") or {}, endpoint.adapter.target_model(endpoint, body.get("model")) or "")
        asked, got = int(body.get("n") or 1), len(data["choices"])
        if got < asked and endpoint.supports_n:
            endpoint.supports_n = False
            log.warning("%s ignores n (asked %d choices, got %d): sending it one sample a request from now "
                        "on, each with its own seed", state.where(), asked, got)
