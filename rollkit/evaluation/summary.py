"""`rollkit evaluate`'s work: read scored records, compute both evaluations, write the JSON
summary, the figures and a page (`evaluation.json`, two PNGs, `evaluation.html`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from rollkit.content.inputs import expand_paths
from rollkit.evaluation import bestofn, figures, processbench
from rollkit.export.view import AnswerCheck
from rollkit.store.atomic import atomic_write, write_json

SUMMARY_NAME = "evaluation.json"
PAGE_NAME = "evaluation.html"


class EvaluationInputError(ValueError):
    """An input line that is not a JSON object: named by file and line."""


def read_records(paths: Sequence[str | Path]) -> Iterator[dict]:
    for path in expand_paths(list(paths)):
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise EvaluationInputError(f"{path}:{number}: not JSON ({exc})") from exc
                if not isinstance(record, dict):
                    raise EvaluationInputError(f"{path}:{number}: not a JSON object")
                yield record


def evaluate(records: Iterable[dict], check: AnswerCheck, reference: str,
             thresholds: Sequence[float] = processbench.DEFAULT_THRESHOLDS) -> dict:
    records = list(records)
    return {"best_of_n": bestofn.curves(bestofn.questions(records, check)),
            "step_level": processbench.step_level(records, reference, thresholds)}


def write(result: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    result["figures"] = {"best_of_n": figures.accuracy_vs_n(result["best_of_n"], out),
                         "step_level": figures.step_level(result["step_level"], out)}
    write_json(out / SUMMARY_NAME, result)
    page = out / PAGE_NAME
    with atomic_write(page) as handle:
        handle.write("<!doctype html><html><head><meta charset='utf-8'><title>rollkit evaluation</title></head>"
                     f"<body>{figures.section(result)}</body></html>\n")
    return page


def report_section(folder: Path) -> str:
    """The evaluation's section for report.py's page, when `rollkit evaluate` wrote into its folder."""
    summary = folder / SUMMARY_NAME
    if not summary.exists():
        return ""
    return figures.section(json.loads(summary.read_text(encoding="utf-8")))
