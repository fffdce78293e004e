"""examples.html: the data behind the counts, a few rollouts at a time.

Rollouts where Monte-Carlo and the judge disagree on the first wrong step come first, then a sample
of the others. Each shows its image as a thumbnail, every step marked by its Monte-Carlo score
(red at 0, green at 1, grey when not measured), and the judge's first wrong step. The choice is by
a hash of `rollout_id` (the smallest points win), so it does not depend on reading order and memory
holds only the rollouts shown.
"""

from __future__ import annotations

import hashlib
import heapq
import html
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from rollkit.content.inputs import image_folder, image_refs, is_url, resolve_image_path
from rollkit.content.rollouts import judge_question
from rollkit.export.labels import judge_first_error
from rollkit.export.view import RolloutView
from rollkit.store.atomic import atomic_write

PAGE = "examples.html"
THUMBS = "thumbs"
THUMB_SIDE = 240
MAX_DISAGREE = 12
MAX_OTHERS = 8

_STYLE = """body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
.example{display:flex;align-items:flex-start;gap:1em;border-top:1px solid #ccc;padding:1em 0}
.example img{width:240px;height:auto;flex:none}
.missing{width:240px;flex:none;color:#a40}ol{margin:.3em 0;padding-left:1.5em}
.step{padding:2px 6px;margin:2px 0}.score{font-family:monospace;margin-right:.5em}
.judge-wrong{outline:3px solid #c00}.badge{color:#fff;background:#c00;padding:0 4px;margin-left:.5em}
.meta{color:#555;font-size:90%}"""


@dataclass(frozen=True)
class ExampleStep:
    text: str
    score: float
    measured: bool
    correct: int
    total: int


@dataclass(frozen=True)
class Example:
    rollout_id: str
    question: str
    images: tuple[str, ...]  # absolute paths or URLs
    steps: tuple[ExampleStep, ...]
    mc_first_error: int | None
    judge: str  # "Correct", "wrong at step N", "no verdict", ...
    judge_wrong_step: int | None
    disagree: bool


def _point(rollout_id: str) -> int:
    return int.from_bytes(hashlib.md5(rollout_id.encode("utf-8")).digest()[:8], "big")


def _judge(view: RolloutView) -> tuple[str, int | None, bool]:
    """What the judge said, its first wrong step, and whether that disagrees with Monte-Carlo."""
    if view.verification == "unverified":
        return "not verified", None, False
    if view.verification != "ok":
        return f"no verdict ({view.verification})", None, False
    found = judge_first_error(view)
    if isinstance(found, str):
        return f"Incorrect, {found.replace('_', ' ')}", None, False
    said = "Correct" if found is None else f"Incorrect: first wrong step {found + 1}"
    return said, found, found != view.mc_first_error


def _images(record: dict, source: str) -> tuple[str, ...]:
    folder = image_folder(record, source)
    return tuple(ref if is_url(ref) else os.path.abspath(resolve_image_path(ref, folder)) for ref in image_refs(record))


class ExamplePicker:
    """Keeps the MAX_DISAGREE disagreeing and MAX_OTHERS other rollouts with the smallest points."""

    def __init__(self) -> None:
        self._kept: dict[bool, list[tuple[int, str, Example]]] = {True: [], False: []}  # max-heaps by -point

    def offer(self, record: dict, view: RolloutView, source: str, rollout_id: str) -> None:
        said, wrong, disagree = _judge(view)
        heap, limit = self._kept[disagree], MAX_DISAGREE if disagree else MAX_OTHERS
        point = _point(rollout_id)
        if len(heap) >= limit and -heap[0][0] <= point:
            return
        steps = tuple(ExampleStep(s.text, s.score, s.measured, s.correct, s.total) for s in view.steps)
        example = Example(rollout_id, judge_question(record), _images(record, source), steps,
                          view.mc_first_error, said, wrong, disagree)
        entry = (-point, rollout_id, example)
        if len(heap) < limit:
            heapq.heappush(heap, entry)
        else:
            heapq.heapreplace(heap, entry)

    def chosen(self) -> list[Example]:
        """Disagreements first, each group by point."""
        return [e for disagree in (True, False) for _, _, e in sorted(self._kept[disagree], reverse=True)]


def _thumbnail(path: str, out: Path) -> str | None:
    """A JPEG thumbnail in out/thumbs/ (relative name), or None when the image does not open."""
    name = f"{THUMBS}/{hashlib.md5(path.encode('utf-8')).hexdigest()}.jpg"
    target = out / name
    if target.exists():
        return name
    try:
        with Image.open(path) as image:
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            target.parent.mkdir(parents=True, exist_ok=True)
            image.convert("RGB").save(target, "JPEG", quality=85)
    except (OSError, UnidentifiedImageError):
        return None
    return name


def _picture(example: Example, out: Path) -> str:
    if not example.images:
        return "<div class='missing'>no image</div>"
    ref = example.images[0]
    thumb = ref if is_url(ref) else _thumbnail(ref, out)
    if thumb is None:
        return f"<div class='missing'>image not found: {html.escape(ref)}</div>"
    return f"<img src='{html.escape(thumb)}' alt='image of {html.escape(example.rollout_id)}'>"


def step_colour(step: ExampleStep) -> str:
    """Red at score 0 through yellow to green at 1; grey when Monte-Carlo did not measure the step."""
    return "hsl(0,0%,90%)" if not step.measured else f"hsl({round(step.score * 120)},65%,85%)"


def _step(n: int, step: ExampleStep, judge_wrong: bool) -> str:
    score = f"MC {step.score:.2f} ({step.correct}/{step.total})" if step.measured else "MC not measured"
    badge = "<span class='badge'>judge: first wrong step</span>" if judge_wrong else ""
    marked = " judge-wrong" if judge_wrong else ""
    return (f"<li class='step{marked}' data-step='{n}' style='background:{step_colour(step)}'>"
            f"<span class='score'>{score}</span>{html.escape(step.text)}{badge}</li>")


def _example(example: Example, out: Path) -> str:
    mc = "no zero score" if example.mc_first_error is None else f"first zero at step {example.mc_first_error + 1}"
    tag = "Monte-Carlo and judge disagree" if example.disagree else "sample"
    steps = "".join(_step(n, s, n == example.judge_wrong_step) for n, s in enumerate(example.steps))
    return (f"<div class='example'>{_picture(example, out)}<div>"
            f"<p class='meta'>{tag} · {html.escape(example.rollout_id)} · Monte-Carlo: {mc} · "
            f"judge: {html.escape(example.judge)}</p><p><b>{html.escape(example.question)}</b></p>"
            f"<ol>{steps}</ol></div></div>")


def write_examples(examples: list[Example], out: Path) -> Path:
    disagree = sum(e.disagree for e in examples)
    body = "".join(_example(e, out) for e in examples) or "<p>No rollout was read.</p>"
    page = out / PAGE
    with atomic_write(page) as handle:
        handle.write(f"<!doctype html><html><head><meta charset='utf-8'><title>rollkit examples</title>"
                     f"<style>{_STYLE}</style></head><body><h1>Examples</h1>"
                     f"<p><a href='index.html'>back to the report</a> · {disagree} where Monte-Carlo and the judge "
                     f"disagree on the first wrong step (up to {MAX_DISAGREE}), then {len(examples) - disagree} "
                     f"others (up to {MAX_OTHERS}), chosen by a hash of rollout_id. Steps are coloured by their "
                     f"Monte-Carlo score: red 0, green 1, grey not measured.</p>{body}</body></html>\n")
    return page
