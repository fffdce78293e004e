"""The aiohttp application: routes, auth, rate limits, faults, and the synthetic answers.

Routes (all on 127.0.0.1):

* ``POST /v1/chat/completions``: OpenAI shape, ``Authorization: Bearer <key>``;
* ``POST /openai/deployments/{deployment}/chat/completions?api-version=...``: Azure shape,
  ``api-key: <key>`` (a Bearer token is accepted too, as Azure does for Entra ID);
* Files and Batches (``/v1/files``, ``/v1/batches``, Azure's ``/openai/files``, ``/openai/batches``):
  see `batches.py`;
* ``GET /v1/models`` (Azure: ``/openai/models``), ``GET /health``: no auth, for vLLM-like clients and readiness checks;
* ``GET /_emulator/stats`` (``?keys=0`` leaves out `completed_by_key`), ``POST /_emulator/reset``:
  counters for tests (see `stats.py`); ``POST /_emulator/down?seconds=S``: an outage from now on,
  replacing any earlier one (``seconds=0`` ends it) (``&mode=hang``: connections are taken and nothing is answered, as by a frozen process)
  (API connections cut, batches keep running); no auth.

A request that sets `max_tokens`/`max_completion_tokens` below the answer's length gets the answer
cut there with `finish_reason: "length"`, as a real server does. `stream: true` is refused (400).

Any non-empty key is accepted unless ``--require-key`` names the one key to accept. Keys are never
logged or echoed. RPM/TPM limits apply per model name (OpenAI path) or per deployment (Azure path),
as the real services do, so one emulator can stand in for several endpoints.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rollkit.emulator import faults, model_rules, prm
from rollkit.emulator.batches import add_batch_routes
from rollkit.emulator.config import EmulatorConfig
from rollkit.emulator.generation import Generation
from rollkit.emulator.policy import Policy, PolicySettings, seed_from
from rollkit.emulator.prefix_cache import PrefixCache
from rollkit.emulator.ratelimit import Decision, RateLimiter, format_duration, retry_after_headers
from rollkit.emulator.shapes import Choice, completion_object, error_response, json_response, models_list
from rollkit.emulator.stats import Stats, request_key
from rollkit.emulator.tokens import count_prompt_tokens, decode, encode

log = logging.getLogger("rollkit.emulator")

MAX_N = 128
# The TPM cost of a request that does not say how long its answer may be.
DEFAULT_MAX_TOKENS = 256
# Requests carry base64 images; Azure accepts bodies far above aiohttp's 1 MB default.
MAX_BODY_BYTES = 64 * 1024 * 1024
EMULATOR_MODEL = "emulator"
NO_FAULT = faults.FaultPlan(None, 500, False, 1.0, 1.0)


@dataclass
class _Outcome:
    """What the stats need to know about one chat request once it is answered."""

    key: str | None = None
    attempt: int = 0
    completed: bool = False
    reset: bool = False


class Emulator:
    def __init__(self, config: EmulatorConfig, answer_key: dict[str, str] | None = None):
        self.config = config
        self.stats = Stats()
        self.policy = Policy(PolicySettings(config.seed, config.p_correct, config.p_continue_correct,
                                            config.judge_garbage, answer_key or {}, config.realism))
        self.limiters: dict[tuple[str, str], RateLimiter] = {}
        self.prefix_cache = PrefixCache() if config.realism else None  # realism: report cached_tokens
        self.fingerprint = f"fp_emu{seed_from('fingerprint', config.seed) % 16**8:08x}"
        # Counters of other parts (the Files and Batches APIs) shown under their own key in the stats.
        self.extra_stats: dict[str, Any] = {}
        self.generation = Generation(config.generation)
        if config.generation.active:
            self.extra_stats["generation"] = self.generation
        # While down (see serve in __main__), new connections are refused and requests arriving on
        # connections opened before are cut, as when a server process dies.
        self.down = False
        self._outage: asyncio.Task | None = None  # the end of an outage asked for by /_emulator/down
        self.back_up = asyncio.Event()  # set when that outage ends (hung requests carry on)

    def limiter(self, scope: tuple[str, str]) -> RateLimiter:
        if scope not in self.limiters:
            self.limiters[scope] = RateLimiter(self.config.meter(), rng=random.Random(seed_from(*scope)))
        return self.limiters[scope]

    async def openai_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, _bearer(request), deployment=None)

    async def azure_chat(self, request: web.Request) -> web.StreamResponse:
        api_key = request.headers.get("api-key", "").strip() or _bearer(request)
        return await self._chat(request, api_key, deployment=request.match_info["deployment"])

    async def models(self, request: web.Request) -> web.Response:
        return json_response(200, models_list([EMULATOR_MODEL]))

    async def health(self, request: web.Request) -> web.Response:
        return json_response(200, {"status": "ok"})

    async def get_stats(self, request: web.Request) -> web.Response:
        out = self.stats.as_json(with_keys=request.query.get("keys", "1") != "0")
        # a part shows up once it has been used, so the chat-only counters keep their shape
        out.update({name: data for name, part in self.extra_stats.items() if (data := part.as_json())})
        return json_response(200, out)

    async def go_down(self, request: web.Request) -> web.Response:
        """An outage from this moment, for `seconds`: every API request has its connection cut
        (as through a proxy whose backend died) while batches keep running. For tests to choose
        the moment; `--down-at` closes the listening socket instead. `mode=hang`: requests are
        taken and left unanswered until the outage ends, as by a frozen server process."""
        try:
            seconds = float(request.query.get("seconds", ""))
        except ValueError:
            return error_response(400, "give ?seconds=S", "invalid_request_error")
        if request.query.get("mode", "cut") not in ("cut", "hang"):
            return error_response(400, "mode is cut or hang", "invalid_request_error")
        if self._outage is not None:
            self._outage.cancel()  # the latest call says when it ends: a test ends an outage with seconds=0
        self.down = request.query.get("mode", "cut") if seconds > 0 else False

        async def back_up() -> None:
            await asyncio.sleep(seconds)
            self.down = False
            self.back_up.set()
            self.back_up.clear()
        self._outage = asyncio.get_running_loop().create_task(back_up())
        return json_response(200, {"down_for": seconds})

    async def reset(self, request: web.Request) -> web.Response:
        """Zero the counters and refill every budget: a fresh start for the next test phase."""
        self.stats.reset()
        self.limiters.clear()
        for part in self.extra_stats.values():
            part.reset()
        return json_response(200, {"reset": True})

    async def _chat(self, request: web.Request, api_key: str, deployment: str | None) -> web.StreamResponse:
        self.stats.received()
        outcome = _Outcome()
        try:
            response = await self._serve_chat(request, api_key, deployment, outcome)
        except asyncio.CancelledError:
            # aiohttp cancels the handler when the connection goes away (handler_cancellation).
            self.stats.answered("reset" if outcome.reset else "client_closed", outcome.key)
            raise
        except Exception:
            self.stats.answered(500, outcome.key)  # aiohttp logs it and answers 500
            raise
        self.stats.answered(response.status, outcome.key, outcome.completed)
        return response

    async def _serve_chat(self, request: web.Request, api_key: str, deployment: str | None,
                          outcome: _Outcome) -> web.StreamResponse:
        early = self._auth_error(api_key)
        if early is None and deployment is not None and not request.query.get("api-version"):
            early = error_response(400, "Missing required query parameter 'api-version'.",
                                   "invalid_request_error", "api-version", "missing_api_version")
        if early is not None:
            return early
        body = await read_chat_body(request)
        if isinstance(body, web.Response):
            return body
        self.stats.saw_body(body)
        model = str(body.get("model") or deployment or "default")
        n = int(body.get("n") or 1)
        key = outcome.key = request_key(body)
        attempt = outcome.attempt = self.stats.next_attempt(key)
        plan = faults.draw(self.config.faults, random.Random(seed_from(key, self.config.seed, "fault", attempt)))
        if plan.kind:
            self.stats.faults[plan.kind] += 1
            log.info("injecting %s into request %s (attempt %d)", plan.kind, key[:12], attempt)
        prompt_tokens = count_prompt_tokens(body)
        refused = model_rules.refusal(self.config.rules, body, model, prompt_tokens) or prm.refusal(self.config, body)
        if refused is not None:
            return refused
        cost = prompt_tokens + (max_output_tokens(body) or DEFAULT_MAX_TOKENS) * n
        limiter = self.limiter(("azure", deployment) if deployment is not None else ("openai", model))
        decision = limiter.snapshot() if plan.kind == "rate_limit" else limiter.admit(cost)
        if plan.kind == "rate_limit" or not decision.allowed:
            return self._rate_limited(limiter, decision, model, cost, injected=plan.kind == "rate_limit")
        self.stats.tokens_billed += cost
        headers = dict(decision.headers)
        headers["x-request-id"] = f"req_{seed_from(key, attempt):016x}"
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms * plan.latency_factor / 1000)
        return await self._answer(request, body, key, model, prompt_tokens, plan, headers, outcome)

    async def _answer(self, request: web.Request, body: dict[str, Any], key: str, model: str,
                      prompt_tokens: int, plan: faults.FaultPlan, headers: dict[str, str],
                      outcome: _Outcome) -> web.StreamResponse:
        if plan.kind == "reset":
            outcome.reset = True
            faults.reset_connection(request)
            await asyncio.sleep(3600)  # cancelled as soon as aiohttp sees the connection gone
        if plan.kind == "server_error":
            return faults.server_error(plan.server_status, headers)
        if plan.kind == "content_filter" and plan.filter_as_error:
            return faults.content_filter_error(headers)
        if plan.kind == "timeout":
            await asyncio.sleep(self.config.timeout_sleep)
        shaped = self._shaped_choices(body, key, model, plan)
        await self.generation.generate([choice.completion_tokens for choice in shaped[0]])
        payload = self.completion(body, key, model, outcome.attempt, plan, prompt_tokens, shaped)
        if plan.kind == "malformed":
            self.stats.malformed += 1
            return faults.malformed(json.dumps(payload), plan.cut_fraction, headers)
        outcome.completed = True
        return json_response(200, payload, headers)

    def completion(self, body: dict[str, Any], key: str, model: str, attempt: int = 0,
                   plan: faults.FaultPlan = NO_FAULT, prompt_tokens: int | None = None,
                   shaped: tuple[list[Choice], int | None] | None = None) -> dict[str, Any]:
        """The chat.completion this server answers to `body`; batch lines get exactly this too."""
        choices, reasoning_tokens = shaped or self._shaped_choices(body, key, model, plan)
        # Unique per attempt like a real id, yet the same in every run with the same inputs.
        completion_id = f"chatcmpl-emu{seed_from(key, attempt, 'id'):016x}"
        tokens = count_prompt_tokens(body) if prompt_tokens is None else prompt_tokens
        cached = self.prefix_cache.cached_tokens(body) if self.prefix_cache else None
        payload = completion_object(completion_id, f"emulator/{model}", choices, tokens, self.fingerprint, cached,
                                    reasoning_tokens)
        if prm.is_prm(model):
            prm.decorate(payload, body, self.config)
        return payload

    def _shaped_choices(self, body: dict[str, Any], key: str, model: str,
                        plan: faults.FaultPlan) -> tuple[list[Choice], int | None]:
        """The policy's choices as the served model's rules shape them (model_rules), with its
        hidden reasoning tokens."""
        return model_rules.shape_choices(self.config.rules, body, model, key, self._choices(body, key, plan),
                                         max_output_tokens(body))

    def _choices(self, body: dict[str, Any], key: str, plan: faults.FaultPlan) -> list[Choice]:
        n = int(body.get("n") or 1)
        if plan.kind == "content_filter":
            return [Choice(None, "content_filter", 0) for _ in range(n)]
        limit = max_output_tokens(body)
        out = []
        prm_model = prm.is_prm(str(body.get("model") or ""))
        contents = [prm.content(body, self.config.seed)] * n if prm_model else self.policy.contents(body, key, n)
        for content in contents:
            tokens = encode(content)
            keep = len(tokens)
            if plan.kind == "length":
                keep = max(1, int(keep * plan.cut_fraction))
            if limit is not None:
                keep = min(keep, limit)  # a real server stops at max_tokens too
            if keep < len(tokens):
                out.append(Choice(decode(tokens[:keep]), "length", keep))
            else:
                out.append(Choice(content, "stop", keep))
        return out

    def _rate_limited(self, limiter: RateLimiter, decision: Decision, model: str, cost: int,
                      injected: bool) -> web.Response:
        """429 for a refused (or injected) request; it takes no budget."""
        kind = decision.limited_by or "requests"
        bucket = limiter.requests if kind == "requests" else limiter.tokens
        retry = decision.retry_after_s
        if injected:  # the budget has room, yet the client must pause: one emulated second
            retry = max(retry, self.config.window_seconds / 60)
        label = "RPM" if kind == "requests" else "TPM"
        requested = 1 if kind == "requests" else cost
        if decision.too_large:
            message = (f"Request too large for tokens per min (TPM) on emulator/{model}: Limit {bucket.limit}, "
                       f"Requested {cost}. The input or output tokens must be reduced in order to run successfully.")
        else:
            used = max(0, bucket.limit - int(bucket.level)) if not bucket.unlimited else 0
            message = (f"Rate limit reached for {kind} per min ({label}) on emulator/{model}: "
                       f"Limit {bucket.limit}, Used {used}, Requested {requested}. "
                       f"Please try again in {format_duration(retry)}.")
        headers = {**decision.headers, **(retry_after_headers(retry) if self.config.retry_after else {})}
        return error_response(429, message, kind, None, "rate_limit_exceeded", headers)

    def _auth_error(self, api_key: str) -> web.Response | None:
        if self.config.no_auth:
            return None
        if not api_key:
            return error_response(401, "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
                                  "(OpenAI) or 'api-key: <key>' (Azure).", "invalid_request_error", None,
                                  "invalid_api_key")
        required = self.config.require_key
        if required is not None and not hmac.compare_digest(api_key.encode(), required.encode()):
            return error_response(401, "Incorrect API key provided.", "invalid_request_error", None,
                                  "invalid_api_key")
        return None


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def max_output_tokens(body: dict[str, Any]) -> int | None:
    """The explicit answer length limit (`max_completion_tokens` wins over `max_tokens`), or None."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is not None:
            return int(value)
    return None


async def read_chat_body(request: web.Request) -> dict[str, Any] | web.Response:
    """The JSON body of a chat request, or the 400 OpenAI would answer to it."""
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "We could not parse the JSON body of your request.", "invalid_request_error")
    if not isinstance(body, dict):
        return error_response(400, "The request body must be a JSON object.", "invalid_request_error")
    problem = _body_problem(body)
    if problem is not None:
        return error_response(400, problem[1], "invalid_request_error", problem[0], "invalid_value")
    return body


def _body_problem(body: dict[str, Any]) -> tuple[str, str] | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return "messages", "'messages' must be a non-empty array of message objects."
    n = body.get("n")
    if n is not None and (not _is_int(n) or not 1 <= n <= MAX_N):
        return "n", f"'n' must be an integer from 1 to {MAX_N}."
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not _is_int(value) or value < 1):
            return name, f"'{name}' must be a positive integer."
    if body.get("stream"):
        return "stream", "The emulator does not support streaming; send 'stream': false."
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Unknown routes, wrong methods and oversized bodies answer in the OpenAI error shape too."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason, "invalid_request_error")


EMULATOR_KEY = web.AppKey("emulator", Emulator)


@web.middleware
async def outage_gate(request: web.Request, handler: Any) -> web.StreamResponse:
    emulator = request.app[EMULATOR_KEY]
    if emulator.down == "hang" and not request.path.startswith("/_emulator/"):
        await emulator.back_up.wait()
    if emulator.down and not request.path.startswith("/_emulator/"):
        request.app[EMULATOR_KEY].stats.answered("refused")
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError
    return await handler(request)


def build_app(config: EmulatorConfig, answer_key: dict[str, str] | None = None) -> web.Application:
    emulator = Emulator(config, answer_key)
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[outage_gate, json_errors])
    app[EMULATOR_KEY] = emulator
    app.router.add_post("/v1/chat/completions", emulator.openai_chat)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", emulator.azure_chat)
    app.router.add_get("/v1/models", emulator.models)
    app.router.add_get("/openai/models", emulator.models)
    app.router.add_get("/health", emulator.health)
    app.router.add_get("/_emulator/stats", emulator.get_stats)
    app.router.add_post("/_emulator/reset", emulator.reset)
    app.router.add_post("/_emulator/down", emulator.go_down)
    add_batch_routes(app, emulator)
    return app
