"""One exchange with one endpoint: the HTTP request and response, and what its outcome is.

Outcomes come from status codes and exception types, never from message text:
- 2xx with choices: the reply (the endpoint is told it answered);
- 429: None, after the endpoint is told to pause and empty its meter (the caller sends it again);
- 401/403: FatalEndpointError, naming the endpoint and the key's variable, never the key;
- 5xx, 408, 409, connection refused or reset, no connection in time: TransientError, and the
  endpoint counts a failure (it backs off as a whole once it stops answering);
- cut off by our timeout after the server took it: CutOffError; a cheap probe (`GET` the model
  list) tells a slow server (`server_up`) from a down one;
- a body that is not a reply: TransientError `malformed`, counted against the request;
- other 4xx: PermanentError, with the refusal's signature for the refusal verdict (`refusals`).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import aiohttp

from rollkit.net.endpoint_state import EndpointState
from rollkit.net.endpoints import env_proxy
from rollkit.net.errors import CutOffError, FatalEndpointError, PermanentError, TransientError
from rollkit.net.refusals import Signature, probe_body, signature
from rollkit.net.replies import error_fields

CONNECT_TIMEOUT_SECONDS = 30.0  # a server that does not even take the connection is down, not slow
PROBE_TIMEOUT_SECONDS = 10.0


class Exchange:
    """Sends one request to one endpoint over a shared session. `count(name)` adds one to the
    client's counter `name` (sent, cut_off, rate_limited): the exchange counts, the client owns."""

    def __init__(self, session: aiohttp.ClientSession, timeout: float, count: Callable[[str], None]) -> None:
        self._session = session
        self.timeout = timeout
        self._timeout = self.session_timeout(timeout)
        self._count = count

    @staticmethod
    def session_timeout(timeout: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, CONNECT_TIMEOUT_SECONDS))

    @staticmethod
    def find_proxies(states: list[EndpointState]) -> None:
        """HTTPS_PROXY and friends are honoured (clusters often need them for remote APIs), but never
        for this machine's own servers: the seeds told users to set NO_PROXY by hand for those."""
        for state in states:
            state.proxy = env_proxy(state.endpoint.chat_url())

    async def post(self, state: EndpointState, body: dict, prompt_tokens: float, cost: float, marks: tuple,
                   timeout: float) -> dict | None:
        """The reply to `body` from `state`'s endpoint, or None after a 429; raises the error class
        of any other outcome."""
        self._count("sent")
        try:
            async with self._request(state, "POST", state.endpoint.chat_url(), data=self.payload(state, body),
                                     timeout=self._request_timeout(timeout)) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        except aiohttp.ServerTimeoutError as exc:  # no connection in time: the server never took it
            raise self._unreachable(state, "timeout", "no connection in time") from exc
        except TimeoutError as exc:  # cut off after the server took it: slow or down, a probe tells
            self._count("cut_off")
            raise await self._cut_off(state, timeout) from exc
        except aiohttp.ClientError as exc:
            raise self._unreachable(state, "connection", type(exc).__name__) from exc
        has_meter = state.replied(headers, marks, cost)
        if status == 429:
            self._count("rate_limited")
            state.refused_for_rate(headers, marks, raw)
            return None
        data = self._check_status(state, status, raw)
        state.answered(prompt_tokens, int((data.get("usage") or {}).get("prompt_tokens") or 0), has_meter)
        return data

    async def probe_refusal(self, state: EndpointState, body: dict) -> Signature | None:
        """Ask `body`'s request with a one-line prompt; the refusal it gets, or None."""
        self._count("sent")
        try:
            async with self._request(state, "POST", state.endpoint.chat_url(),
                                     data=self.payload(state, probe_body(body))) as response:
                raw, status = await response.read(), response.status
        except (TimeoutError, aiohttp.ClientError):
            return None
        if status < 400 or status == 429 or status >= 500:
            return None
        return signature(status, raw)

    def _request(self, state: EndpointState, method: str, url: str, **options):
        """A request to `state`'s endpoint with its headers and proxy (every call goes through here)."""
        proxy, proxy_auth = state.proxy
        return self._session.request(method, url, headers=state.endpoint.headers(), proxy=proxy,
                                     proxy_auth=proxy_auth, **options)

    @staticmethod
    def payload(state: EndpointState, body: dict) -> bytes:
        return json.dumps(state.endpoint.shape_body(body), ensure_ascii=False).encode("utf-8")

    def _request_timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        if seconds == self.timeout:
            return self._timeout
        return aiohttp.ClientTimeout(total=seconds, sock_connect=self._timeout.sock_connect)

    async def _cut_off(self, state: EndpointState, timeout: float) -> CutOffError:
        what = f"cut off after {timeout:g} s (possibly billed)"
        if await state.alive(lambda: self._ask_model_list(state)):
            state.record_alive()
            return CutOffError(f"{state.where()}: {what}; the server answers, so it is slow, not down", True,
                               endpoint_answers=state.answers)
        down = self._unreachable(state, "cut_off", f"{what}, and the server does not answer a probe")
        return CutOffError(str(down), False, down.counts, down.endpoint_answers)

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

    @staticmethod
    def _unreachable(state: EndpointState, reason: str, what: str) -> TransientError:
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
            code, message = error_fields(raw)
            reason = endpoint.adapter.error_reason(status, code)
            raise PermanentError(reason, f"{endpoint.name}: HTTP {status} {code or ''} {message}".strip(),
                                 signature(status, raw), state)
        try:
            data = json.loads(raw)
            if not isinstance(data.get("choices"), list) or not data["choices"]:
                raise ValueError("no choices")
        except (ValueError, AttributeError) as exc:
            # The server is up and answered: this counts against the request, whatever the streak.
            raise TransientError("malformed", f"{endpoint.name}: malformed reply ({exc})",
                                 endpoint_answers=state.record_malformed()) from exc
        return data
