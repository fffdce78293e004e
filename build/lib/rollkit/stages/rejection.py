"""Rejection sampling: N candidates per question, a judge score for each, the best one kept.

The three stages (sampling.py, score.py, reject.py) are compositions of the functions here, so a
candidate is sampled, scored and selected the same way whichever script runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path

import jsonlines

from rollkit.answers.score_text import parse_judge_score
from rollkit.content.images import ImageError, record_image_paths
from rollkit.content.inputs import image_folder, image_refs, is_url
from rollkit.content.messages import build_messages, image_parts, question_text, reference_answers
from rollkit.net.client import ChatClient, ChatResult
from rollkit.net.samples import sample_bodies, sample_seed
from rollkit.prompts import render
from rollkit.stages.runner import Outcome
from rollkit.store.atomic import atomic_write


@dataclass(frozen=True)
class SamplingParams:
    model: str
    n: int = 4
    temperature: float = 1.0
    max_tokens: int = 2048
    seeded: bool = True
    max_image_side: int | None = None
    use_n: bool = True  # one request with n: the prompt and its images are paid once, not n times
    drop_truncated: bool = False  # leave answers cut off at the token budget out (default: keep them)


@dataclass(frozen=True)
class ScoringParams:
    model: str
    max_tokens: int = 512


def sampling_bodies(record: dict, source: str, entry_id: str, params: SamplingParams) -> list[dict]:
    """One body asking for `n` choices, or (`use_n` off) n bodies with a seed each."""
    messages = build_messages(record, source, params.max_image_side)
    base = {"model": params.model, "messages": messages, "temperature": params.temperature,
            "max_tokens": params.max_tokens}
    seed = sample_seed(entry_id, 0) if params.seeded else None
    return sample_bodies(base, params.n, use_n=params.use_n, seed=seed)


def candidate_entry(index: int, result: ChatResult, drop_truncated: bool = False) -> dict:
    entry = {"index": index, "ok": result.ok, "finish_reason": (result.finish_reasons or [None])[0]}
    if not result.ok:
        entry.update(reason=result.reason, message=result.message)
    elif drop_truncated and is_cut_off(result):
        entry["dropped"] = True  # --drop-truncated: not among generated_answers, not a failure either
    return entry


def is_cut_off(result: ChatResult) -> bool:
    """An answer that stopped at the token budget: kept as it stands unless --drop-truncated."""
    return result.ok and result.finish_reasons[:1] == ["length"]


async def sample_candidates(client: ChatClient, record: dict, source: str, entry_id: str,
                            params: SamplingParams) -> dict:
    """Fields a sampled record adds: the answers that came back, and what became of every sample."""
    bodies = sampling_bodies(record, source, entry_id, params)
    replies = await asyncio.gather(*(client.complete(body, i, per_choice=params.use_n)
                                     for i, body in enumerate(bodies)))
    results = replies[0].split(params.n) if params.use_n else replies
    kept = [r for r in results if r.ok and not (params.drop_truncated and is_cut_off(r))]
    return {
        "original_question": question_text(record),
        "original_answers": reference_answers(record),
        "generated_answers": [r.text for r in kept],
        "candidates": [candidate_entry(i, r, params.drop_truncated) for i, r in enumerate(results)],
        "failed_candidates": sum(not r.ok for r in results),
        "cut_off_candidates": sum(is_cut_off(r) for r in results),
        "model": next((r.model for r in results if r.model), params.model),
        "usage": _sum_usage(replies),
    }


def sampling_outcome(fields: dict) -> Outcome:
    """A record with at least one answer is written (incomplete if some failed); none: an error."""
    if not fields["generated_answers"]:
        first = next((c for c in fields["candidates"] if not c["ok"]), None)
        if first is None:
            return Outcome(error_reason="length", message="every sample was cut off at the token budget and "
                                                          "--drop-truncated left it out; raise --max-tokens")
        return Outcome(error_reason=first["reason"], message=f"every sample failed: {first['message']}")
    return Outcome(record=fields, incomplete=fields["failed_candidates"] > 0)


def _sum_usage(results: list[ChatResult]) -> dict:
    total = {"prompt_tokens": 0, "completion_tokens": 0}
    for result in results:
        for name in total:
            total[name] += int((result.usage or {}).get(name) or 0)
    return total


def scoring_body(record: dict, source: str, answer: str, params: ScoringParams,
                 max_image_side: int | None = None) -> dict:
    prompt = render("score_candidate", question=question_text(record),
                    reference="\n".join(reference_answers(record)), candidate=answer)
    images = image_parts(record, source, max_image_side)
    content: list | str = [{"type": "text", "text": prompt}, *images] if images else prompt
    return {"model": params.model, "messages": [{"role": "user", "content": content}],
            "temperature": 0, "max_tokens": params.max_tokens}


async def score_candidates(client: ChatClient, record: dict, source: str, answers: list[str],
                           params: ScoringParams, max_image_side: int | None = None) -> dict:
    """Fields a scored record adds. A failed judge call is `None` with its reason, never a number."""
    bodies = [scoring_body(record, source, answer, params, max_image_side) for answer in answers]
    results = await asyncio.gather(*(client.complete(body) for body in bodies))
    scores = [parse_judge_score(r.text) if r.ok else None for r in results]
    return {
        "generated_scores": scores,
        "judge_replies": [r.text if r.ok else None for r in results],
        "judge_failures": [None if r.ok else {"reason": r.reason, "message": r.message} for r in results],
        "failed_scores": sum(not r.ok for r in results),
        "scorer_model": next((r.model for r in results if r.model), params.model),
    }


async def score_and_select(client: ChatClient, record: dict, source: str, answers: list[str],
                           params: ScoringParams, min_score: float | None, max_image_side: int | None = None) -> dict:
    """The fields score.py and reject.py add after sampling: scores, then the selection."""
    fields = await score_candidates(client, record, source, answers, params, max_image_side)
    fields.update(select_best(answers, fields["generated_scores"], min_score))
    return fields


def select_best(answers: list[str], scores: list[float | None], min_score: float | None) -> dict:
    """The highest score wins; ties go to the earliest candidate, so reruns pick the same one."""
    ranked = [(score, -index) for index, score in enumerate(scores) if score is not None]
    if not ranked:
        return {"best_index": None, "best_answer": None, "best_score": None, "selected": False}
    score, negative_index = max(ranked)
    index = -negative_index
    selected = min_score is None or score >= min_score
    return {"best_index": index, "best_answer": answers[index], "best_score": score, "selected": selected}


def sft_images(record: dict, output: str | Path, sft_path: str | Path) -> list[str] | None:
    """The record's images as paths that open from the SFT file's folder (URLs as they are); None
    when it has none. Relative paths of the input would point elsewhere once the SFT file moves."""
    try:
        _, paths = record_image_paths(record, image_folder(record, output))
    except ImageError:  # not on this machine any more: keep what the record said
        return image_refs(record) or None
    folder = Path(sft_path).resolve().parent
    return [p if is_url(p) else os.path.relpath(Path(p).resolve(), folder) for p in paths] or None


def sft_record(record: dict, output: str | Path = ".", sft_path: str | Path = "sft.jsonl") -> dict | None:
    """A kept pair as `conversations` (human turns plus the chosen answer) with its `images` as paths
    from the SFT file's folder, for SFT."""
    if not record.get("selected"):
        return None
    if "conversations" in record:
        turns = list(record["conversations"])
        while turns and turns[-1].get("from") in ("gpt", "assistant"):
            turns.pop()
    else:
        turns = [{"from": "human", "value": record.get("original_question", "")}]
    out = {"entry_id": record["entry_id"], "conversations": [*turns, {"from": "gpt", "value": record["best_answer"]}]}
    images = sft_images(record, output, sft_path)
    if images:
        out["images"] = images
    return out


def write_sft(output: str | Path, sft_path: str | Path) -> int:
    """Derive the SFT file from the whole output, replaced atomically: it can never disagree with it."""
    kept = 0
    with jsonlines.open(output) as reader, atomic_write(sft_path) as out:
        for record in reader.iter(type=dict, skip_invalid=True):
            pair = sft_record(record, output, sft_path)
            if pair is not None:
                out.write(json.dumps(pair, ensure_ascii=False) + "\n")
                kept += 1
    return kept
