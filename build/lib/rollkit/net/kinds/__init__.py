"""One small adapter per endpoint kind: everything that differs between OpenAI, Azure OpenAI and a
local vLLM/SGLang server lives in that kind's module, so adding a kind touches one file (and this
registry). The online client, the key lookup and the Batch API service all ask the adapter.
"""

from __future__ import annotations

from rollkit.net.kinds.azure import AzureKind
from rollkit.net.kinds.base import Kind
from rollkit.net.kinds.local import LocalKind
from rollkit.net.kinds.openai import OpenAIKind

KIND_ADAPTERS: dict[str, Kind] = {kind.name: kind for kind in (OpenAIKind(), AzureKind(), LocalKind())}


def adapter(name: str) -> Kind:
    return KIND_ADAPTERS[name]


__all__ = ["KIND_ADAPTERS", "Kind", "adapter"]
