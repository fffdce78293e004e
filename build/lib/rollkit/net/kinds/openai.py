"""OpenAI, and any server that speaks its API with a Bearer key (the base shape as it is)."""

from __future__ import annotations

from rollkit.net.kinds.base import Kind


class OpenAIKind(Kind):
    name = "openai"
