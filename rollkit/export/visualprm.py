"""`visualprm`: VisualPRM's process-reward conversation, one row per kept rollout.

The conversation opens with a system turn (prompts/visualprm_system.txt, or --prompt-file) saying
the model grades steps. The first user turn holds the image, the question and step 1; every
assistant turn is one step token (good or bad, "+"/"-" by default), and every user turn after
one holds the next step. A trainer's collator masks everything but the step tokens. The
conversation itself is built in content/prm_turns.py, which `rollkit prm-score` asks with too.

Row shapes (--chat-schema):
- `conversations` (the seed's Qwen-VL data module, LLaVA / InternVL-style scripts): `conversations`
  as `{"from": "system"|"human"|"gpt", "value"}` with `<image>` in the first human turn, `image`
  (the path; null for a question without an image) and `image_qwen_smart_resize` (the resized copy
  the seed's default IMAGE_SIZE=smart-resize opens; run.py adds it, images.py writes it).
- `messages` (the seed's TRL SFTTrainer script, HF processors' chat templates): `messages` as
  `{"role", "content"}` with content parts `{"type": "image", "text": "<image>"}` (the item the
  seed's collator puts the row's image into) / `{"type": "text", "text"}`, `image` (the first
  image: its path, or in Parquet the image itself) and `images` (every path).
Both carry `entry_id`, `rollout_id`, `label_policy` and `filled_steps` beside.
"""

from __future__ import annotations

import hashlib
from array import array

import pyarrow as pa

from rollkit.content.prm_turns import (  # noqa: F401  (the export's names, built in content for prm-score too)
    FIRST_TURN,
    IMAGE_TAG,
    SYSTEM_PROMPT,
    PromptFileError,
    StepTokens,
    messages_row,
    system_prompt,
    turns,
)
from rollkit.content.steps import parse_solution

CHAT_SCHEMAS = ("conversations", "messages")
RESIZED_KEY = "image_qwen_smart_resize"
ERROR_SECTIONS = ("all", "reasoning", "perception")


def step_marks(values: list, threshold: float) -> list[bool]:
    """Good or bad per step: labels as they are, scores (mc-soft) above the threshold."""
    return [v > threshold if isinstance(v, float) else bool(v) for v in values]


def first_error_section(response: object, marks: list[bool]) -> str | None:
    """"perception" or "reasoning" for the section of the first bad step, None when every step is
    good, "unknown" when the response does not split into the scored steps."""
    first = next((i for i, good in enumerate(marks) if not good), None)
    if first is None:
        return None
    solution = parse_solution(response if isinstance(response, str) else "")
    if not solution.parsed or len(solution.steps) != len(marks):
        return "unknown"
    return "perception" if first < len(solution.perception_steps) else "reasoning"


def section_drop(wanted: str, section: str | None) -> str | None:
    """Why --error-sections leaves a rollout out, or None to keep it. Rollouts without an error are
    kept: the ablation leaves out the errors of the other section, not the sound rollouts."""
    if wanted == "all" or section is None or section == wanted:
        return None
    return "error_section_unknown" if section == "unknown" else f"first_error_in_{section}"


def conversations_row(question: str, steps: list[str], marks: list[bool], images: list[str], system: str,
                      tokens: StepTokens) -> dict:
    names = {"user": "human", "assistant": "gpt"}
    conversation = [{"from": "system", "value": system}]
    for n, (role, text) in enumerate(turns(question, steps, marks, tokens)):
        value = f"{IMAGE_TAG}\n" * len(images) + text if n == 0 else text
        conversation.append({"from": names[role], "value": value})
    # the resized copy is filled in when the row is written (run.py): rows dropped before never get one
    return {"conversations": conversation, "image": images[0] if images else None, RESIZED_KEY: None}


def schema(chat_schema: str) -> pa.Schema:
    strings = pa.list_(pa.string())
    ids = [("entry_id", pa.string()), ("rollout_id", pa.string()), ("label_policy", pa.string()),
           ("filled_steps", pa.list_(pa.int64()))]
    if chat_schema == "conversations":
        turn = pa.struct([("from", pa.string()), ("value", pa.string())])
        return pa.schema([("conversations", pa.list_(turn)), ("image", pa.string()), (RESIZED_KEY, pa.string()),
                          *ids])
    part = pa.struct([("type", pa.string()), ("text", pa.string())])
    message = pa.struct([("role", pa.string()), ("content", pa.list_(part))])
    return pa.schema([("messages", pa.list_(message)), ("image", pa.string()), ("images", strings), *ids])


def balance_point(rollout_id: str) -> int:
    return int.from_bytes(hashlib.md5(rollout_id.encode("utf-8")).digest()[:8], "big")


class Balance:
    """--balance: as many rows with an error as without. A first pass `count`s each row's class and
    hash point (8 bytes a row); `cut` then keeps every row of the smaller class and, of the larger,
    the rows with the smallest points, as many as the smaller class has."""

    def __init__(self) -> None:
        self._points = {True: array("Q"), False: array("Q")}  # has an error -> points
        self._limit: dict[bool, int] | None = None

    def count(self, rollout_id: str, has_error: bool) -> None:
        self._points[has_error].append(balance_point(rollout_id))

    def cut(self) -> None:
        keep = min(len(points) for points in self._points.values())
        self._limit = {}
        for cls, points in self._points.items():
            ordered = sorted(points)
            # rows strictly below the limit are kept; the largest point + 1 keeps a whole class
            self._limit[cls] = ordered[keep] if keep < len(ordered) else 1 << 64
        self._points = {True: array("Q"), False: array("Q")}

    def keeps(self, rollout_id: str, has_error: bool) -> bool:
        return balance_point(rollout_id) < self._limit[has_error]
