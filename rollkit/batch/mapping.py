"""`map`: join batch results back onto the rollouts by `custom_id`: the rollout's `rollout_id`, else
the seed's `unique_id` (its merge step made that the custom_id), else the id `pack` derived.

Every rollout is written, with every field it had (rollout.py's Monte-Carlo `first_incorrect_step`,
an int, stays as it is), plus:

    rollout_id                 kept, or the custom_id it was joined by
    verification_status        ok | no_conclusion | refused | failed | pending
    verification_response      the judge's text (null without a reply)
    conclusion                 true / false; null when the judge did not follow the format
    judge_first_incorrect_step {"section", "index", "step"} from the per-step verdicts, or null
    verification_model         the model that answered, as the service reported it
    verification_error         why there is no verdict (refusal reason, failure, "no result yet")
    verification_prompt        {"name", "sha256"} of the judge's template, when --results names a
                               batch folder (or its results/) whose manifest.json says it
    image_root                 the folder relative image paths start from (kept when the rollout
                               had one, else its file's folder), as the online stages record it,
                               so the output finds its images in whatever folder it is written to

Outputs of schema 1 (the judge's dict in `first_incorrect_step`, the Monte-Carlo int moved to
`mc_first_incorrect_step`) are read too: mapping one again gives the schema-2 shape.

`pending` rollouts (no result yet, or only retryable errors) are written and counted, never
dropped, so one more `map` after the processor finishes fills them in.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rollkit.batch.limits import MANIFEST_NAME, RESULTS_DIR
from rollkit.batch.results import LineResult, ResultIndex
from rollkit.batch.verdicts import parse_verdict
from rollkit.content.inputs import image_root_field
from rollkit.content.rollouts import rollout_items
from rollkit.content.steps import parse_solution
from rollkit.store.atomic import atomic_write
from rollkit.store.result_log import dump_line

log = logging.getLogger("rollkit")

MAX_LISTED_PENDING = 10


@dataclass
class MapReport:
    counts: Counter = field(default_factory=Counter)
    pending_ids: list[str] = field(default_factory=list)
    bad_input: int = 0

    def summary(self) -> str:
        parts = [f"{name} {self.counts[name]}" for name in
                 ("ok", "no_conclusion", "refused", "failed", "pending") if self.counts[name]]
        text = f"mapped {sum(self.counts.values())} rollouts: " + (", ".join(parts) or "none")
        if self.bad_input:
            text += f"; {self.bad_input} unreadable input lines skipped"
        if self.counts["pending"]:
            shown = ", ".join(self.pending_ids)
            more = " ..." if self.counts["pending"] > len(self.pending_ids) else ""
            text += f"\nno result yet for {self.counts['pending']} rollouts: {shown}{more}"
        return text


def from_schema_1(record: dict) -> dict:
    """A map output of schema 1 in the schema-2 shape: the Monte-Carlo step back in
    `first_incorrect_step`, the judge's dict in `judge_first_incorrect_step`."""
    judged = record.get("first_incorrect_step")
    if not isinstance(judged, dict) and "mc_first_incorrect_step" not in record:
        return record
    out = {k: v for k, v in record.items() if k not in ("first_incorrect_step", "mc_first_incorrect_step")}
    if "mc_first_incorrect_step" in record:
        out["first_incorrect_step"] = record["mc_first_incorrect_step"]
    elif not isinstance(judged, dict):
        out["first_incorrect_step"] = judged
    out.setdefault("judge_first_incorrect_step", judged if isinstance(judged, dict) else None)
    return out


def _perception_count(record: dict) -> int | None:
    solution = parse_solution(record.get("response") or "")
    return len(solution.perception_steps) if solution.parsed else None


def verification_fields(record: dict, result: LineResult | None, default_model: str | None) -> dict:
    if result is None or result.status == "retry":
        reason = "no result yet" if result is None else f"no result yet (last try: {result.reason})"
        return {"verification_status": "pending", "verification_response": None, "conclusion": None,
                "judge_first_incorrect_step": None, "verification_model": None, "verification_error": reason}
    if result.status != "ok":
        return {"verification_status": result.status, "verification_response": None, "conclusion": None,
                "judge_first_incorrect_step": None, "verification_model": result.model or default_model,
                "verification_error": result.reason}
    verdict = parse_verdict(result.text, _perception_count(record))
    status = "ok" if verdict.conclusion is not None else "no_conclusion"
    error = None
    if verdict.conclusion is None:
        error = "no <conclusion>Correct/Incorrect</conclusion> in the reply"
        if result.finish_reason == "length":
            error += " (cut off at max_completion_tokens)"
    return {"verification_status": status, "verification_response": result.text,
            "conclusion": verdict.conclusion, "judge_first_incorrect_step": verdict.first_incorrect_step,
            "verification_model": result.model or default_model, "verification_error": error}


def judge_prompt(results: Sequence[str | Path]) -> dict | None:
    """The template the results answered, from the manifest of the batch folder they are in; None
    when no manifest says it, or the folders were packed with different templates."""
    found = set()
    for given in map(Path, results):
        folder = given.parent if given.name == RESULTS_DIR else given
        manifest = folder / MANIFEST_NAME
        if manifest.is_file():
            packed = json.loads(manifest.read_text(encoding="utf-8"))
            found.add((packed.get("prompt"), packed.get("prompt_sha256")))
    if len(found) != 1:
        return None
    name, sha256 = found.pop()
    return {"name": name, "sha256": sha256}


def map_results(rollouts: Sequence[str | Path], results: Sequence[str | Path], output: Path,
                default_model: str | None = None) -> MapReport:
    """Write every rollout with its verdict to `output` (replaced atomically at the end)."""
    index = ResultIndex(results)
    prompt = judge_prompt(results)
    prompt_field = {} if prompt is None else {"verification_prompt": prompt}
    report = MapReport()
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(output, "wb") as out:
        for item, custom_id in rollout_items(rollouts):
            if item.record is None:
                report.bad_input += 1
                log.warning("%s", item.error)
                continue
            fields = verification_fields(item.record, index.get(custom_id), default_model)
            if fields["verification_status"] != "pending":
                fields.update(prompt_field)
            report.counts[fields["verification_status"]] += 1
            if fields["verification_status"] == "pending" and len(report.pending_ids) < MAX_LISTED_PENDING:
                report.pending_ids.append(custom_id)
            out.write(dump_line({**from_schema_1(item.record), **image_root_field(item.record, item.source),
                                 "rollout_id": custom_id, **fields}))
    return report
