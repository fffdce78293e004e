"""Endpoints: configuration (flags or TOML), the adapters that shape a request for each kind, and the
pool that routes each request to the endpoint that can take it soonest (each endpoint's live state
is its own: `endpoint_state`)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import ipaddress
import itertools
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from aiohttp import BasicAuth
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from rollkit.net.endpoint_state import EndpointState
from rollkit.net.kinds import KIND_ADAPTERS, Kind, adapter
from rollkit.net.kinds.azure import DEFAULT_API_VERSION
from rollkit.net.secrets import register_secret

KINDS = tuple(KIND_ADAPTERS)
DEFAULT_AZURE_API_VERSION = DEFAULT_API_VERSION


class EndpointConfigError(Exception):
    """A bad endpoint definition or a missing key variable: fatal before any request is sent."""


@dataclass
class Endpoint:
    """One place to send chat requests. The key is resolved from the environment and never shown."""

    name: str
    kind: str
    base_url: str
    model: str | None = None
    deployment: str | None = None
    api_version: str | None = None
    key_env: str | None = None
    rpm: float = 0
    tpm: float = 0
    window_seconds: float = 60.0
    supports_n: bool = True  # several choices per request (`n`); false makes rollout.py send one each
    api_key: str | None = field(default=None, repr=False)
    # Batch API enqueued-token quota of this deployment/model (None: unknown, rely on refusals)
    enqueued_tokens: int | None = None
    # OpenAI's reasoning-model rules (max_completion_tokens, no temperature/top_p; see
    # kinds.reasoning): None follows the model's name, true/false says so for this endpoint
    reasoning: bool | None = None

    @property
    def adapter(self) -> Kind:
        """What this kind of server wants: URL, headers, body, key rules (see `rollkit.net.kinds`)."""
        return adapter(self.kind)

    def chat_url(self) -> str:
        return self.adapter.chat_url(self)

    def headers(self) -> dict[str, str]:
        return self.adapter.headers(self)

    def shape_body(self, body: dict) -> dict:
        return self.adapter.shape_body(self, body)

    def completion_budget(self, body: dict) -> int:
        """The completion tokens a request of `body` reserves on this endpoint, as it is sent: the
        budget under the kind's name, a reasoning model's thinking allowance included, times `n`."""
        return self.adapter.completion_budget(self, body)

    def describe(self) -> str:
        target = self.adapter.target_model(self)
        return f"{self.name} ({self.kind} {self.base_url}, {target})"

    def where(self) -> str:
        """name (host:port), never a key or a query string."""
        parsed = urlparse(self.base_url)
        return f"{self.name} ({parsed.hostname}:{parsed.port or (443 if parsed.scheme == 'https' else 80)})"


def is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def keep_loopback_off_proxies() -> None:
    """Add the loopback hosts to NO_PROXY (this process only) when a proxy is configured."""
    if not any(os.environ.get(name) for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")):
        return
    for name in ("NO_PROXY", "no_proxy"):
        present = [h.strip() for h in os.environ.get(name, "").split(",") if h.strip()]
        os.environ[name] = ",".join(present + [h for h in LOOPBACK_HOSTS if h not in present])


def env_proxy(url: str) -> tuple[URL | None, BasicAuth | None]:
    """The proxy (and its credentials) the environment names for `url`, honouring NO_PROXY.

    Worked out once per endpoint: aiohttp's trust_env would look it up, and ~/.netrc, in a worker
    thread on every request, which was the client's largest CPU cost per request."""
    keep_loopback_off_proxies()
    try:
        return get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None


def resolve_key(endpoint: Endpoint) -> Endpoint:
    """Fill the key from the named environment variable; the message names the variable, never a value."""
    variable = endpoint.key_env or endpoint.adapter.default_key_env
    if variable is None:
        return endpoint  # a local server started without --api-key
    value = os.environ.get(variable)
    if not value:
        if not endpoint.adapter.needs_key(endpoint):
            return endpoint  # a server on this machine needs no key
        raise EndpointConfigError(f"endpoint {endpoint.name}: environment variable {variable} is not set")
    register_secret(value)
    endpoint.api_key = value
    endpoint.key_env = variable
    return endpoint


def _check(endpoint: Endpoint, where: str) -> Endpoint:
    if endpoint.kind not in KINDS:
        raise EndpointConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {endpoint.kind!r}")
    if not endpoint.base_url.startswith(("http://", "https://")):
        raise EndpointConfigError(f"{where}: base_url must start with http:// or https://")
    if endpoint.kind == "azure" and not endpoint.deployment:
        raise EndpointConfigError(f"{where}: an azure endpoint needs a deployment")
    endpoint.base_url = endpoint.base_url.rstrip("/")
    return endpoint


def load_endpoints_toml(path: str | Path, default_model: str | None = None) -> list[Endpoint]:
    """`[[endpoint]]` tables with name, kind, base_url, model/deployment, api_version, key_env, rpm, tpm,
    enqueued_tokens (Batch API quota), supports_n, reasoning (true/false: the reasoning-model rules)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EndpointConfigError(f"{path}: {exc}") from exc
    tables = data.get("endpoint") or data.get("endpoints") or []
    if not tables:
        raise EndpointConfigError(f"{path}: no [[endpoint]] tables")
    known = set(Endpoint.__dataclass_fields__) - {"api_key"}
    endpoints = []
    for index, table in enumerate(tables, 1):
        where = f"{path} endpoint {index}"
        unknown = set(table) - known
        if unknown:
            raise EndpointConfigError(f"{where}: unknown keys {sorted(unknown)}")
        table = {"name": f"endpoint{index}", "kind": "openai", "model": default_model, **table}
        try:
            endpoints.append(_check(Endpoint(**table), where))
        except TypeError as exc:
            raise EndpointConfigError(f"{where}: {exc}") from exc
    return endpoints


def endpoint_from_flags(
    *,
    base_url: str | None,
    port: int | None,
    azure_endpoint: str | None,
    model: str | None,
    deployment: str | None = None,
    api_version: str | None = None,
    key_env: str | None = None,
    rpm: float = 0,
    tpm: float = 0,
) -> Endpoint:
    """One endpoint from the command line: `--base-url`, the seeds' `--port`, or `--azure-endpoint`."""
    if azure_endpoint:
        endpoint = Endpoint("azure", "azure", azure_endpoint, model, deployment or model, api_version,
                            key_env or "AZURE_API_KEY", rpm, tpm)
    elif base_url:
        endpoint = Endpoint("default", "openai", base_url, model, key_env=key_env, rpm=rpm, tpm=tpm)
    elif port:
        endpoint = Endpoint("local", "local", f"http://127.0.0.1:{port}/v1", model, key_env=key_env,
                            rpm=rpm, tpm=tpm)
    else:
        raise EndpointConfigError("no endpoint: give --base-url, --port, --azure-endpoint or --endpoints")
    return _check(endpoint, "command line")


class PriorityGate:
    """One holder at a time; waiters are served lowest priority first, then in arrival order, so a
    request sent back after a 429 goes ahead of requests that never left."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._arrivals = itertools.count()

    @contextlib.asynccontextmanager
    async def turn(self, priority: int):
        if self._held or self._waiters:
            future = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (priority, next(self._arrivals), future))
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._wake_next()  # the turn was handed over just as we were cancelled
                else:
                    self._waiters = [w for w in self._waiters if w[2] is not future]
                    heapq.heapify(self._waiters)
                raise
        else:
            self._held = True
        try:
            yield
        finally:
            self._wake_next()

    def _wake_next(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # the turn passes on; _held stays True
                return
        self._held = False


class EndpointPool:
    """Routes each request to the endpoint that can take it soonest, with the most headroom."""

    def __init__(self, endpoints: list[Endpoint], max_in_flight: int = 1 << 30) -> None:
        if not endpoints:
            raise EndpointConfigError("no endpoints configured")
        self._changed = asyncio.Event()  # an answer came back: in-flight windows, meters or ramps moved
        self.states = [EndpointState(endpoint, max_in_flight, notify=self._changed.set) for endpoint in endpoints]
        self._gate = PriorityGate()

    async def acquire(self, prompt_tokens: float, body: dict, priority: int = 1) -> tuple[EndpointState, tuple, float]:
        """Wait for an endpoint that can take the request now and reserve it there; returns the
        endpoint, the marks its answer's readings are aged by, and the tokens reserved (the prompt
        and the completion budget as that endpoint is sent it). Priority 0 goes first (resent)."""
        async with self._gate.turn(priority):
            costs = [prompt_tokens + state.endpoint.completion_budget(body) for state in self.states]
            while True:
                wait, index = self._soonest(costs)
                if wait <= 0:
                    state = self.states[index]
                    return state, state.reserve(costs[index]), costs[index]
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout=min(wait, 5.0))
                except TimeoutError:
                    pass

    def _soonest(self, costs: list[float]) -> tuple[float, int]:
        """The endpoint that can take its cost soonest, ties to one that is not failing in a row,
        then to the most headroom (a server that meters nothing always has room, so without this
        a broken one would take every other request); each endpoint's wait is worked out once
        (this runs for every request)."""
        best, best_key = 0, None
        for index, state in enumerate(self.states):
            key = (state.wait_time(costs[index]), state.failures_in_a_row > 0, -state.headroom())
            if best_key is None or key < best_key:
                best, best_key = index, key
        return best_key[0], best

    def limit_in_flight(self, count: int) -> None:
        """At most `count` requests in flight per endpoint (the stage's concurrency); a server with
        no meter of its own gets fewer while it answers 429s."""
        for state in self.states:
            state.limit_in_flight(count)

    def release(self, state: EndpointState) -> None:
        state.release()
        self._changed.set()

    def outage_seconds(self) -> float:
        """How long every endpoint has been failing (0 while any of them answers)."""
        now = time.monotonic()
        return min(state.down_for(now) for state in self.states)

    def describe_down(self) -> str:
        return ", ".join(state.where() for state in self.states)

    def describe(self) -> dict:
        return {state.endpoint.name: state.describe() for state in self.states}
