"""Per-service defaults: line url, lines, bytes and tokens per input file, the manifest version.

Figures are from the services' documentation (see shared/design/batch_api_notes.md); they change,
so every one of them can be overridden on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollkit.net.kinds import adapter

# Bump with a note in the README when the manifest or the packed-id log changes shape.
MANIFEST_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
PACKED_IDS_NAME = "packed_ids.jsonl"
PACK_ERRORS_NAME = "pack.errors.jsonl"
RESULTS_DIR = "results"
LEDGER_DIR = "ledger"
SUBMIT_DIR = "submit"

# "200 MB" on both services; counted in decimal megabytes so it holds whichever unit they mean.
MAX_FILE_BYTES = 200_000_000


@dataclass(frozen=True)
class FileLimits:
    max_lines: int
    max_bytes: int
    max_tokens: int | None  # None: no cap on estimated tokens per file


@dataclass(frozen=True)
class Target:
    url: str  # the `url` of every line, and the `endpoint` given to batches.create
    limits: FileLimits


TARGETS = {
    # OpenAI: 50,000 requests and 200 MB per file. There is no per-file token cap, only the
    # per-model, per-tier queue limit (90K to billions), so the default sets none: pass
    # --max-tokens-per-file with your own queue limit from Settings -> Limits.
    "openai": Target(adapter("openai").batch_url, FileLimits(50_000, MAX_FILE_BYTES, None)),
    # Azure global batch: 100,000 requests and 200 MB per file (limits page). A file only runs when
    # it fits the deployment's enqueued-token quota; 50M is the smallest paid quota listed for the
    # gpt-4.1, gpt-4o and o-series models, and leaves room for several files per deployment under
    # the default 200M. The seed's files used the legacy "/chat/completions" line url.
    "azure": Target(adapter("azure").batch_url, FileLimits(100_000, MAX_FILE_BYTES, 50_000_000)),
    # `vllm run-batch` runs a whole file on the GPUs it was given: no service caps, so the
    # OpenAI file shape is kept (files stay easy to move and to resubmit). It accepts only
    # "/v1/chat/completions" for chat (create_request_task in vllm/entrypoints/openai/run_batch.py).
    "vllm": Target(adapter("local").batch_url, FileLimits(50_000, MAX_FILE_BYTES, None)),
}


def line_route(target: str, model: str) -> tuple[str, str]:
    """The `url` and `body.model` of every batch line, as the target accepts them: Azure takes
    its legacy "/chat/completions" and the deployment name as `model`; OpenAI and vLLM take
    "/v1/chat/completions" and the model's name (for vLLM, the served model name)."""
    return TARGETS[target].url, model


def target_from_flags(target: str | None, *, azure_endpoint: str | None = None, base_url: str | None = None,
                      port: int | None = None) -> str:
    """--target when given; else the kind the endpoint flags name (--port: a local vLLM server,
    --base-url: OpenAI, --azure-endpoint: Azure); else azure, as the seed."""
    if target:
        return target
    if port is not None:
        return "vllm"
    if base_url:
        return "openai"
    return "azure"

CHAT_URLS = {"/chat/completions", "/v1/chat/completions"}
