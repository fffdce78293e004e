"""Endpoints: configuration (flags or TOML), the adapters that shape a request for each kind, and the
pool that routes each request to the endpoint with the most headroom."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from .ratelimit import Budget
from .secrets import register_secret

KINDS = ("openai", "azure", "local")
DEFAULT_AZURE_API_VERSION = "2024-10-21"
REST_AFTER_FAILURES = 5
REST_SECONDS = 30.0


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

    def chat_url(self) -> str:
        if self.kind == "azure":
            version = self.api_version or DEFAULT_AZURE_API_VERSION
            return f"{self.base_url}/openai/deployments/{self.deployment}/chat/completions?api-version={version}"
        return f"{self.base_url}/chat/completions"

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.kind == "azure":
            headers["api-key"] = self.api_key or ""
        else:
            # Local servers started without --api-key ignore the header; "EMPTY" is their convention.
            headers["Authorization"] = f"Bearer {self.api_key or 'EMPTY'}"
        return headers

    def shape_body(self, body: dict) -> dict:
        """The body as this endpoint wants it: Azure routes by deployment, the others by model.

        A body ending with an assistant message asks for that message to be continued. OpenAI and
        Azure take it as a prefix as it is; vLLM and SGLang would open a new assistant turn after it
        unless told to continue the final message instead.
        """
        shaped = {**body, "model": self.deployment if self.kind == "azure" else self.model or body.get("model")}
        messages = body.get("messages") or []
        if self.kind == "local" and messages and messages[-1].get("role") == "assistant":
            shaped.update(continue_final_message=True, add_generation_prompt=False)
        return shaped

    def describe(self) -> str:
        target = self.deployment if self.kind == "azure" else self.model
        return f"{self.name} ({self.kind} {self.base_url}, {target})"


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


def resolve_key(endpoint: Endpoint) -> Endpoint:
    """Fill the key from the named environment variable; the message names the variable, never a value."""
    if endpoint.kind == "local" and not endpoint.key_env:
        return endpoint
    variable = endpoint.key_env or ("AZURE_API_KEY" if endpoint.kind == "azure" else "OPENAI_API_KEY")
    value = os.environ.get(variable)
    if not value:
        if endpoint.kind != "azure" and is_loopback(endpoint.base_url):
            return endpoint  # a local server needs no key
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
    enqueued_tokens (Batch API quota)."""
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


class EndpointState:
    """The live budgets and health of one endpoint."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.requests = Budget(endpoint.rpm, endpoint.window_seconds)
        self.tokens = Budget(endpoint.tpm, endpoint.window_seconds)
        self.paused_until = 0.0
        self.failures_in_a_row = 0

    def wait_time(self, cost: float, now: float) -> float:
        return max(self.paused_until - now, self.requests.wait_time(1), self.tokens.wait_time(cost))

    def headroom(self) -> float:
        return min(self.requests.headroom(), self.tokens.headroom())

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def record_success(self) -> None:
        self.failures_in_a_row = 0

    def record_failure(self) -> None:
        """An endpoint that keeps failing rests, so the others carry the load until it recovers."""
        self.failures_in_a_row += 1
        if self.failures_in_a_row >= REST_AFTER_FAILURES:
            self.pause(REST_SECONDS)
            self.failures_in_a_row = 0


class EndpointPool:
    """Routes each request to the endpoint that can take it soonest, with the most headroom."""

    def __init__(self, endpoints: list[Endpoint]) -> None:
        if not endpoints:
            raise EndpointConfigError("no endpoints configured")
        self.states = [EndpointState(endpoint) for endpoint in endpoints]
        # One waiter at a time keeps the order fair and the wait exact, with no polling.
        self._lock = asyncio.Lock()

    async def acquire(self, cost: float) -> EndpointState:
        async with self._lock:
            while True:
                now = time.monotonic()
                state = min(self.states, key=lambda s: (s.wait_time(cost, now), -s.headroom()))
                wait = state.wait_time(cost, now)
                if wait <= 0:
                    state.requests.take(1)
                    state.tokens.take(cost)
                    return state
                await asyncio.sleep(wait)
