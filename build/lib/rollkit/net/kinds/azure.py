"""Azure OpenAI: routes by deployment in the path, `api-version` in the query, key in `api-key`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rollkit.net.kinds.base import SDK_TIMEOUT_SECONDS, Kind

if TYPE_CHECKING:
    from rollkit.net.endpoints import Endpoint

DEFAULT_API_VERSION = "2024-10-21"


class AzureKind(Kind):
    name = "azure"
    default_key_env = "AZURE_API_KEY"
    batch_url = "/chat/completions"

    def chat_url(self, endpoint: Endpoint) -> str:
        version = endpoint.api_version or DEFAULT_API_VERSION
        return f"{endpoint.base_url}/openai/deployments/{endpoint.deployment}/chat/completions?api-version={version}"

    def models_url(self, endpoint: Endpoint) -> str:
        """The resource's model list (deployments are not listed on the data plane)."""
        return f"{endpoint.base_url}/openai/models?api-version={endpoint.api_version or DEFAULT_API_VERSION}"

    def headers(self, endpoint: Endpoint) -> dict[str, str]:
        return {"Content-Type": "application/json", "api-key": endpoint.api_key or ""}

    def target_model(self, endpoint: Endpoint, requested: str | None = None) -> str | None:
        return endpoint.deployment or requested

    def needs_key(self, endpoint: Endpoint) -> bool:
        return True

    def sdk_client(self, endpoint: Endpoint, max_retries: int, timeout: float = SDK_TIMEOUT_SECONDS) -> Any:
        import openai

        return openai.AzureOpenAI(azure_endpoint=endpoint.base_url, api_key=endpoint.api_key or "",
                                  api_version=endpoint.api_version or DEFAULT_API_VERSION,
                                  max_retries=max_retries, timeout=timeout)
