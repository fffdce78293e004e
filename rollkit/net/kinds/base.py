"""What every endpoint kind answers; the shared defaults are the OpenAI wire format's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rollkit.content.tokens import completion_allowance
from rollkit.net.kinds.reasoning import fit_reasoning, is_reasoning_model
from rollkit.net.pacing import openai_header_name

if TYPE_CHECKING:
    from rollkit.net.endpoints import Endpoint

SDK_TIMEOUT_SECONDS = 120.0


class Kind:
    name = ""
    default_key_env: str | None = "OPENAI_API_KEY"
    batch_url: str | None = "/v1/chat/completions"  # the `url` of a Batch API line for this kind
    # Whether its servers may meter requests (rate headers, 429s): the endpoint's ramp (`net.ramp`)
    # then sends one request alone until its reply shows the meters. Local servers queue instead:
    # once one answers, every slot goes at once.
    may_meter = True
    # The answer's token budget: every current OpenAI chat model takes `max_completion_tokens`,
    # and reasoning models refuse `max_tokens` (bodies are built with `max_tokens`, renamed here).
    budget_field = "max_completion_tokens"

    def chat_url(self, endpoint: Endpoint) -> str:
        return f"{endpoint.base_url}/chat/completions"

    def models_url(self, endpoint: Endpoint) -> str:
        """A cheap request any server of this kind answers when it is up: its model list."""
        return f"{endpoint.base_url}/models"

    def headers(self, endpoint: Endpoint) -> dict[str, str]:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {endpoint.api_key or 'EMPTY'}"}

    def target_model(self, endpoint: Endpoint, requested: str | None = None) -> str | None:
        """What the server routes by: a model name here, a deployment on Azure."""
        return endpoint.model or requested

    def shape_body(self, endpoint: Endpoint, body: dict) -> dict:
        shaped = {**body, "model": self.target_model(endpoint, body.get("model"))}
        if self.budget_field != "max_tokens" and "max_tokens" in shaped:
            budget = shaped.pop("max_tokens")
            shaped.setdefault(self.budget_field, budget)
        return fit_reasoning(shaped, self.follows_reasoning_rules(endpoint, body.get("model")), self.budget_field)

    def completion_budget(self, endpoint: Endpoint, body: dict) -> int:
        """The completion tokens `body` reserves as this endpoint is sent it (and as a server that
        meters the whole budget, as OpenAI does, counts it): a reasoning model's thinking allowance
        is part of it."""
        return completion_allowance(self.shape_body(endpoint, body))

    def follows_reasoning_rules(self, endpoint: Endpoint, requested: str | None = None) -> bool:
        """The endpoint's `reasoning` setting, else whether its model's name is a reasoning family's."""
        if endpoint.reasoning is not None:
            return endpoint.reasoning
        return any(is_reasoning_model(name) for name in (endpoint.deployment, endpoint.model or requested))

    def needs_key(self, endpoint: Endpoint) -> bool:
        """Whether a run must refuse to start without the key variable."""
        from rollkit.net.endpoints import is_loopback

        return not is_loopback(endpoint.base_url)

    def ratelimit_header(self, what: str, unit: str) -> str:
        """The name of a meter header (`what`: limit, remaining, reset; `unit`: requests, tokens)."""
        return openai_header_name(what, unit)

    def error_reason(self, status: int, code: str | None) -> str:
        """The reason a refused request is recorded under (status code and error code, never text)."""
        return "content_filter" if code == "content_filter" else f"http_{status}"

    def sdk_client(self, endpoint: Endpoint, max_retries: int, timeout: float = SDK_TIMEOUT_SECONDS) -> Any:
        """An official `openai` SDK client for the Files and Batches APIs, or None (no Batch API)."""
        import openai

        return openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key or "EMPTY",
                             max_retries=max_retries, timeout=timeout)
