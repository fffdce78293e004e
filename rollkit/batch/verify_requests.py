"""One verification request per rollout, and the rollout ids that become `custom_id`s.

A rollout written by rollout.py carries its `rollout_id`. The seed's merge step gave each rollout a
`unique_id`, which became its custom_id: it is used next. Other rollouts have neither, so one is
derived the way rollout.py makes them: `f"{entry}:r{k}"`, where `entry` is the
record's `entry_id` (or the id computed from its question and images) and `k` counts the rollouts of
that entry in reading order. The same paths in the same order always give the same ids, which is
what lets `map` join results made by `pack`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

from rollkit.content.images import image_size
from rollkit.content.messages import image_parts
from rollkit.content.rollouts import judge_question
from rollkit.content.tokens import completion_allowance, count_messages
from rollkit.prompts import fill, load_template, placeholders

PROMPT_NAME = "verify_steps"
DEFAULT_MAX_COMPLETION_TOKENS = 8192  # what the seed gave its o4-mini judge
# --max-model-len counts the prompt with an OpenAI encoding, not the served model's tokenizer:
# SmolLM2's counts the built-in judge prompt 12-15 % higher (its chat template adds a system turn),
# so the prompt is given this much more room. An underestimate costs little: vLLM accepts a prompt
# plus max_completion_tokens over the context and stops the answer there.
PROMPT_TOKEN_FACTOR = 1.25
PROMPT_TOKEN_SLACK = 64
MIN_COMPLETION_TOKENS = 256  # less room than this for the judge's reply: the line is not packed



class RequestError(ValueError):
    """A rollout that cannot become a request (no response, missing image, ...)."""


class ContextError(RequestError):
    """A prompt that leaves too little of --max-model-len for the reply."""


class PromptFileError(ValueError):
    """A --prompt-file that cannot be the judge's template: bad usage."""


@dataclass(frozen=True)
class JudgePrompt:
    """The verification template: its name (the built-in's, or the --prompt-file's file name), text
    and sha256, which the manifest and `map` record so every verdict says which prompt it answered."""

    name: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @classmethod
    def built_in(cls) -> JudgePrompt:
        return cls(PROMPT_NAME, load_template(PROMPT_NAME))

    @classmethod
    def from_file(cls, path: str | Path) -> JudgePrompt:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PromptFileError(f"--prompt-file {path}: cannot read it ({exc})") from exc
        found = placeholders(text)
        if found != {"question", "solution"}:
            raise PromptFileError(f"--prompt-file {path}: a verification template holds exactly {{{{question}}}} "
                                  f"and {{{{solution}}}}; it has {sorted(found) or 'no placeholder'}")
        return cls(Path(path).name, text)


@dataclass(frozen=True)
class RequestOptions:
    model: str  # the `model` of every body: the deployment name on Azure
    url: str
    max_completion_tokens: int = DEFAULT_MAX_COMPLETION_TOKENS
    max_image_side: int | None = None
    prompt: JudgePrompt = field(default_factory=JudgePrompt.built_in)
    max_model_len: int | None = None  # --max-model-len: prompt + reply budget must fit in it


def solution_text(record: dict) -> str:
    response = record.get("response")
    if not isinstance(response, str) or not response.strip():
        raise RequestError('no "response" text to verify')
    return response.strip()


def build_request(record: dict, source: str, custom_id: str, options: RequestOptions) -> dict:
    """The batch line: `custom_id` first (resume scans read it without parsing the line)."""
    prompt = fill(options.prompt.text, options.prompt.name, question=judge_question(record),
                  solution=solution_text(record))
    content = [{"type": "text", "text": prompt}, *image_parts(record, source, options.max_image_side)]
    messages = [{"role": "user", "content": content}]
    body = {"model": options.model, "messages": messages,
            "max_completion_tokens": completion_budget(messages, options)}
    return {"custom_id": custom_id, "method": "POST", "url": options.url, "body": body}


def completion_budget(messages: list[dict], options: RequestOptions) -> int:
    """max_completion_tokens of one line: the requested budget, lowered so that the prompt (counted
    with room to spare) and the reply fit in --max-model-len when it is given."""
    if options.max_model_len is None:
        return options.max_completion_tokens
    prompt = count_messages(messages, options.model, image_size)
    room = options.max_model_len - math.ceil(prompt * PROMPT_TOKEN_FACTOR) - PROMPT_TOKEN_SLACK
    if room < min(MIN_COMPLETION_TOKENS, options.max_completion_tokens):
        raise ContextError(f"its prompt of about {prompt} tokens leaves {max(room, 0)} of --max-model-len "
                           f"{options.max_model_len} for the reply (at least "
                           f"{min(MIN_COMPLETION_TOKENS, options.max_completion_tokens)} needed); "
                           "serve the model with a longer context or downscale images with --max-image-side")
    return min(options.max_completion_tokens, room)


def request_tokens(request: dict) -> int:
    """Estimated tokens of one line: prompt text with the model's encoding, images by the tile rule
    from their pixel size, plus the completion allowance."""
    body = request["body"]
    return count_messages(body["messages"], body.get("model"), image_size) + completion_allowance(body)
