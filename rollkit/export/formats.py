"""Row builders, one per training format, and their Parquet schemas.

- `trl-prm`: TRL's stepwise supervision columns `prompt`, `completions` (the steps in order) and
  `labels` (one per step), plus `images`, `entry_id`, `rollout_id`, `label_policy`, `filled_steps`.
- `openrlhf-prm`: OpenRLHF's process reward rows: `input`, the question and the steps each followed
  by the placeholder token, and `value`, one label per placeholder ("+"/"-", or floats for mc-soft);
  train with `--input_key input --label_key value --placeholder_token TOKEN --reward_tokens + -`.
- `sft`: rollouts that reach the right answer with every step labelled good, as `conversations`
  (a human turn with one `<image>` per image, then the response) with `images`.
- `pairs`: per question a `chosen` (right answer, every step good) and a `rejected` (wrong
  answer) response with the `prompt` and `images`, for DPO; each rollout is used at most once.
- `visualprm`: VisualPRM's step-grading conversation (visualprm.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

from rollkit.content.inputs import image_folder, image_refs, resolve_image_path
from rollkit.content.rollouts import judge_question
from rollkit.export.labels import Labels

FORMATS = ("trl-prm", "openrlhf-prm", "sft", "pairs", "visualprm")
DEFAULT_PLACEHOLDER = "ки"  # Math-Shepherd's step tag, which OpenRLHF's examples use
_URL_PREFIXES = ("http://", "https://", "data:")


@dataclass(frozen=True)
class RowContext:
    out_dir: Path  # image paths are written relative to it (or absolute)
    absolute_images: bool = False
    placeholder: str = DEFAULT_PLACEHOLDER
    policy: str = "mc-hard"


class MissingImage(ValueError):
    pass


def image_paths(record: dict, source: str, ctx: RowContext) -> list[str]:
    """The record's images as paths that open from the output's folder; MissingImage if one is not there."""
    folder = str(image_folder(record, source))
    paths = []
    for ref in image_refs(record):
        if ref.startswith(_URL_PREFIXES):
            paths.append(ref)
            continue
        path = _output_path(folder, ref, str(ctx.out_dir), ctx.absolute_images)
        if path is None:
            looked = os.path.abspath(resolve_image_path(ref, folder))
            raise MissingImage(f"image {ref!r} not found: looked for {looked} (--image-root DIR points elsewhere)")
        paths.append(path)
    return paths


@lru_cache(maxsize=1 << 16)  # the K rollouts of a question share its images: each is looked up once
def _output_path(folder: str, ref: str, out_dir: str, absolute: bool) -> str | None:
    full = os.path.abspath(resolve_image_path(ref, folder))
    if not os.path.isfile(full):
        return None
    return full if absolute else os.path.relpath(full, os.path.abspath(out_dir))


def ids(record: dict) -> dict:
    return {"entry_id": record["entry_id"], "rollout_id": record["rollout_id"]}


def trl_prm(record: dict, steps: list[str], labels: Labels, images: list[str], ctx: RowContext) -> dict:
    return {"prompt": judge_question(record), "completions": steps, "labels": labels.values, "images": images,
            **ids(record), "label_policy": ctx.policy, "filled_steps": list(labels.filled_steps)}


def openrlhf_prm(record: dict, steps: list[str], labels: Labels, images: list[str], ctx: RowContext) -> dict:
    marked = "".join(f"{step} {ctx.placeholder}\n" for step in steps)
    values = [v if isinstance(v, float) else ("+" if v else "-") for v in labels.values]
    return {"input": f"{judge_question(record)}\n{marked}", "value": values, "images": images, **ids(record),
            "label_policy": ctx.policy, "filled_steps": list(labels.filled_steps)}


def sft(record: dict, images: list[str]) -> dict:
    human = "<image>\n" * len(images) + judge_question(record)
    return {"conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": record["response"]}],
            "images": images, **ids(record)}


def pair(record: dict, chosen: dict, rejected: dict, images: list[str]) -> dict:
    """`record`: either rollout of the question (for the prompt); `chosen`/`rejected`: their
    `rollout_id` and `response`."""
    return {"prompt": judge_question(record), "chosen": chosen["response"], "rejected": rejected["response"],
            "images": images, "entry_id": record["entry_id"], "chosen_rollout_id": chosen["rollout_id"],
            "rejected_rollout_id": rejected["rollout_id"]}


def schema(fmt: str, soft: bool) -> pa.Schema:
    """Fixed column types, so every Parquet batch agrees (an empty list has no type of its own)."""
    strings = pa.list_(pa.string())
    common = [("images", strings), ("entry_id", pa.string())]
    if fmt in ("trl-prm", "openrlhf-prm"):
        label = pa.float64() if soft else (pa.bool_() if fmt == "trl-prm" else pa.string())
        head = [("prompt", pa.string()), ("completions", strings), ("labels", pa.list_(label))] \
            if fmt == "trl-prm" else [("input", pa.string()), ("value", pa.list_(label))]
        return pa.schema([*head, *common, ("rollout_id", pa.string()), ("label_policy", pa.string()),
                          ("filled_steps", pa.list_(pa.int64()))])
    if fmt == "sft":
        turn = pa.struct([("from", pa.string()), ("value", pa.string())])
        return pa.schema([("conversations", pa.list_(turn)), *common, ("rollout_id", pa.string())])
    return pa.schema([("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string()), *common,
                      ("chosen_rollout_id", pa.string()), ("rejected_rollout_id", pa.string())])
