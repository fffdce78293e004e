"""Answer parsing (``parse_answer``) and checking (``check_answer``) for every format and scoring mode.

Answer formats and scoring modes are small functions registered by name; adding a dataset is one
function plus one line in ``_DATASET_MODES``. Conventions that hold for every mode:

- ``check_answer`` returns 0 or 1; with several modes the result is the best of them.
- A ground truth may be a list of acceptable answers: a match with any one counts.
- An empty (or whitespace-only) prediction or ground truth never counts as correct: 0.
- Predictions that are not text (None, dicts, bools) score 0; ints and floats are read as their
  decimal text, so ``2`` and ``"2"`` are the same answer.
- ``parse_answer`` returns None when nothing parses; no response text makes it raise.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import queue
import re
import select
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

ModeFn = Callable[[str, str], int]
JudgeFn = Callable[[str, str, "str | None"], Awaitable[int]]

_FORMATS: dict[str, Callable[[str], str | None]] = {}
_MODES: dict[str, ModeFn] = {}
ASYNC_MODES = frozenset({"llm_judge"})


def register_format(name: str) -> Callable[[Callable[[str], str | None]], Callable[[str], str | None]]:
    def add(fn: Callable[[str], str | None]) -> Callable[[str], str | None]:
        _FORMATS[name] = fn
        return fn

    return add


def register_mode(name: str) -> Callable[[ModeFn], ModeFn]:
    """Register ``fn(pred, gt) -> 0/1``; both arguments arrive as non-empty stripped strings."""

    def add(fn: ModeFn) -> ModeFn:
        _MODES[name] = fn
        return fn

    return add


# ---------------------------------------------------------------- answer formats


def parse_answer(response: str, answer_format: str) -> str | None:
    """The answer in ``response`` under ``answer_format`` (see ``answer_formats()``), or None."""
    if answer_format not in _FORMATS:
        raise ValueError(f"unknown answer format {answer_format!r}; known: {sorted(_FORMATS)}")
    if not isinstance(response, str):
        return None
    answer = _FORMATS[answer_format](response)
    return answer if answer else None


def answer_formats() -> list[str]:
    return sorted(_FORMATS)


@register_format("boxed")
def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, braces matched by counting (``\\{`` is escaped)."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = start + len("\\boxed")
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text) or text[i] != "{":
        return None
    depth, body_start = 0, i + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return _unwrap_text(text[body_start:i].strip())
        i += 1
    # Unbalanced: the output was cut off inside the box; an earlier box is not the final answer.
    return None


def _unwrap_text(content: str) -> str:
    wrapped = re.fullmatch(r"\\(?:text|textbf|mathrm)\{([^{}]*)\}", content)
    return wrapped.group(1).strip() if wrapped else content


_OPEN_ANSWER = re.compile(r"<\s*correct_answer\s*>", re.IGNORECASE)
_CLOSE_ANSWER = re.compile(r"<\s*/\s*correct_answer\s*>", re.IGNORECASE)


def _correct_answer_inside(text: str) -> str | None:
    # The last opening tag decides: if a re-answer was cut off, an earlier answer is not final.
    openings = list(_OPEN_ANSWER.finditer(text))
    opening = openings[-1] if openings else None
    closing = _CLOSE_ANSWER.search(text, opening.end()) if opening else None
    return text[opening.end() : closing.start()].strip() if opening and closing else None


@register_format("correct_answer")
def correct_answer(text: str) -> str | None:
    """Inside ``<correct_answer>``: the boxed content if there is a box, else the stripped text."""
    inside = _correct_answer_inside(text)
    if inside is None or "\\boxed" not in inside:
        return inside
    return last_boxed(inside)  # None for a broken box: its raw text is not an answer either


@register_format("dvqa_v1_int_only")
def dvqa_v1(text: str) -> str | None:
    return correct_answer(text)


@register_format("raven_v1")
def raven_v1(text: str) -> str | None:
    """Panel number 1-8 from the answer block (first standalone digit; the box first if present)."""
    content = correct_answer(text)
    found = re.search(r"(?<![\d.])[1-8](?!\d|\.\d)", content or "")
    return found.group(0) if found else None


@register_format("raven_v2")
def raven_v2(text: str) -> str | None:
    """Option letter A-H from the answer block, read like any multiple-choice letter."""
    content = correct_answer(text)
    letter = mc_letter(content) if content else None
    return letter if letter and letter <= "H" else None


_ANSWER_LINE = re.compile(
    r"^[\s>*_#-]*(?:final\s+)?(?:answer|答案)[\s*_]*[:：][\s*_]*(?P<answer>.+?)[\s*_]*$",
    re.IGNORECASE | re.MULTILINE,
)


@register_format("answer_line")
def answer_line(text: str) -> str | None:
    found = list(_ANSWER_LINE.finditer(text))
    return found[-1].group("answer").strip() if found else None


_WHOLE_LETTER = re.compile(r"\(?([A-Za-z])\)?[.:)]?")
_LEADING_LETTER = re.compile(r"(?:\(([A-Z])\)|([A-Z])[.:)])\s+\S")
# The letter must be closed off ("B", "B.", "(B)") so "the answer is A bird" is not read as A.
_KEYWORD_LETTER = re.compile(
    r"(?i:\b(?:answer|option|choice)\b)(?:\s+(?i:is))?\s*[:：]?\s*"
    r"(?:\(([A-Z])\)|([A-Z])(?=\s*(?:$|[.,;:)\]])))",
    re.MULTILINE,
)


@register_format("mc_letter")
def mc_letter(text: str) -> str | None:
    """An option letter from ``B``, ``(B)``, ``B.``, ``B) text``, ``Answer: B``, ``the answer is B``."""
    for candidate in (last_boxed(text), _correct_answer_inside(text), text):
        if not candidate:
            continue
        bare = candidate.strip().strip("*$'\"` ").strip()
        short = _WHOLE_LETTER.fullmatch(bare) or _LEADING_LETTER.match(bare)
        if short:
            return (short.group(1) or short.group(2)).upper()
        keyword = list(_KEYWORD_LETTER.finditer(candidate))
        if keyword:
            return keyword[-1].group(1) or keyword[-1].group(2)
    return None


@register_format("auto")
def auto(text: str) -> str | None:
    for fmt in (correct_answer, last_boxed, answer_line, _last_short_line):
        answer = fmt(text)
        if answer:
            return answer
    return None


def _last_short_line(text: str, max_chars: int = 100) -> str | None:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines and len(lines[-1]) <= max_chars else None


# ---------------------------------------------------------------- checking


def _as_text(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return value.strip() if isinstance(value, str) else None


def _ground_truths(answer_gt: object) -> list[str]:
    values = answer_gt if isinstance(answer_gt, (list, tuple)) else [answer_gt]
    return [text for text in map(_as_text, values) if text]


def _mode_names(mode: str | Sequence[str]) -> list[str]:
    names = [mode] if isinstance(mode, str) else list(mode)
    unknown = [name for name in names if name not in _MODES and name not in ASYNC_MODES]
    if unknown or not names:
        raise ValueError(f"unknown scoring mode(s) {unknown or names}; known: {scoring_modes()}")
    return names


def scoring_modes() -> list[str]:
    return sorted([*_MODES, *ASYNC_MODES])


def check_answer(
    answer_pred: object,
    answer_gt: object,
    mode: str | Sequence[str],
    *,
    question: str | None = None,
    image: object = None,
) -> int:
    """1 if the prediction matches a ground truth under any of the modes, else 0.

    ``question`` and ``image`` are only used by ``llm_judge``, which needs ``check_answer_async``.
    """
    names = _mode_names(mode)
    if ASYNC_MODES.intersection(names):
        raise ValueError("mode 'llm_judge' calls a model: use `await check_answer_async(...)` instead")
    return _check_sync(answer_pred, answer_gt, names)


def _check_sync(answer_pred: object, answer_gt: object, names: Iterable[str]) -> int:
    pred = _as_text(answer_pred)
    if not pred:
        return 0
    gts = _ground_truths(answer_gt)
    return int(any(_MODES[name](pred, gt) for name in names for gt in gts))


# ---------------------------------------------------------------- scoring modes


@register_mode("vqa_score")
def vqa_score(pred: str, gt: str) -> int:
    normalised = vqa_normalize(pred)
    return int(bool(normalised) and normalised == vqa_normalize(gt))


# Punctuation the official VQA evaluation removes; apostrophes, colons and periods are kept here.
_VQA_PUNCT = ';/[]"{}()=+\\_-><@`,?!'
_VQA_DIGIT_COMMA = re.compile(r"\d,\d")
# The official script meant "a period not between digits" but its regex, as run, strips every
# period not followed by a digit ("2." -> "2", "2.5" kept). Published scores use that behaviour.
_VQA_PERIOD = re.compile(r"\.(?!\d)")
_VQA_NUMBERS = dict(
    zip(
        "none zero one two three four five six seven eight nine ten".split(),
        "0 0 1 2 3 4 5 6 7 8 9 10".split(),
        strict=True,
    )
)
_VQA_ARTICLES = frozenset({"a", "an", "the"})
_CONTRACTIONS = (
    "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't "
    "haven't he'd he'd've he's how'd how'll how's i'd've i'm i've isn't it'd it'd've it'll ma'am "
    "mightn't mightn't've might've mustn't must've needn't not've o'clock oughtn't shan't she'd've "
    "she's should've shouldn't shouldn't've somebody'd've somebody'll somebody's someone'd "
    "someone'd've someone'll someone's something'd something'd've something'll that's there'd "
    "there'd've there're there's they'd they'd've they'll they're they've 'twas wasn't we'd've we've "
    "weren't what'll what're what's what've when's where'd where's where've who'd who'd've who'll "
    "who's who've why'll why're why's won't would've wouldn't wouldn't've y'all y'all'll y'all'd've "
    "you'd you'd've you'll you're you've"
).split()


def _contraction_map() -> dict[str, str]:
    # Every spelling with some apostrophes dropped ("dont", "couldnt've") maps to the full form.
    table = {}
    for word in _CONTRACTIONS:
        marks = [i for i, char in enumerate(word) if char == "'"]
        for k in range(1, len(marks) + 1):
            for dropped in itertools.combinations(marks, k):
                table["".join(c for i, c in enumerate(word) if i not in dropped)] = word
    return table


_VQA_CONTRACTIONS = _contraction_map()


def vqa_normalize(text: str) -> str:
    """The official VQA answer normalisation: punctuation, periods, number words, articles, contractions."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    # Official rule: a mark touching a space, or any mark in text with a digit-comma, is deleted
    # ("1,000" -> "1000"); elsewhere it becomes a space ("red/white" -> "red white").
    delete = bool(_VQA_DIGIT_COMMA.search(text))
    for mark in _VQA_PUNCT:
        gone = delete or f"{mark} " in text or f" {mark}" in text
        text = text.replace(mark, "" if gone else " ")
    text = _VQA_PERIOD.sub("", text)
    words = [_VQA_NUMBERS.get(word, word) for word in text.lower().split()]
    return " ".join(_VQA_CONTRACTIONS.get(word, word) for word in words if word not in _VQA_ARTICLES)


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _to_float(text: str) -> float | None:
    text = _THOUSANDS_COMMA.sub("", text.strip()).removesuffix("%").strip()
    return float(text) if _NUMBER.fullmatch(text) else None


@register_mode("relaxed_accuracy")
def relaxed_accuracy(pred: str, gt: str, tolerance: float = 0.05) -> int:
    """ChartQA: numbers within 5% of the truth, anything else an exact case-insensitive match."""
    pred_value, gt_value = _to_float(pred), _to_float(gt)
    if pred_value is None or gt_value is None:
        return int(pred.casefold() == gt.casefold())
    # Years are labels, not quantities (2019 is not "within 5%" of 2020); only 0 is near 0.
    if gt_value == 0 or re.fullmatch(r"(?:19|20)\d\d", gt):
        return int(pred_value == gt_value)
    return int(abs(pred_value - gt_value) <= tolerance * abs(gt_value))


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def anls_similarity(pred: str, gt: str, threshold: float = 0.5) -> float:
    """DocVQA's ANLS for one pair: 1 - edit distance / longer length, 0.0 below ``threshold``."""
    pred, gt = (" ".join(str(s).lower().split()) for s in (pred, gt))
    if not pred or not gt:
        return 0.0
    similarity = 1.0 - levenshtein(pred, gt) / max(len(pred), len(gt))
    return similarity if similarity >= threshold else 0.0


@register_mode("anls")
def anls(pred: str, gt: str) -> int:
    return int(anls_similarity(pred, gt) > 0.0)


@register_mode("mc_score")
def mc_score(pred: str, gt: str) -> int:
    letter = mc_letter(pred)
    return int(letter is not None and letter == mc_letter(gt))


@register_mode("raven_score_integer_only")
def raven_score_integer_only(pred: str, gt: str) -> int:
    return int(pred == gt and pred in set("12345678"))


@register_mode("raven_score_alphabet_only")
def raven_score_alphabet_only(pred: str, gt: str) -> int:
    pred, gt = pred.upper(), gt.upper()
    return int(pred == gt and pred in set("ABCDEFGH"))


_SMALL_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def _number_word_table() -> dict[str, int]:
    # 0-99 covers the counts VQA-style questions ask for; larger numbers come back as digits.
    table = {word: value for value, word in enumerate(_SMALL_NUMBERS)}
    for tens_value, tens in enumerate(_TENS, 2):
        table[tens] = tens_value * 10
        for unit in range(1, 10):
            for joiner in (" ", "-"):
                table[f"{tens}{joiner}{_SMALL_NUMBERS[unit]}"] = tens_value * 10 + unit
    return table


_NUMBER_WORDS = _number_word_table()
# Thousands may be grouped by commas or spaces; "1 2" is not twelve.
_GROUPED_DIGITS = re.compile(r"\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+|\d+")


def integer_text(text: str) -> str | None:
    """Canonical integer text: ``" 1,000 "`` -> ``"1000"``, ``"minus three"`` -> ``"-3"``; else None.

    Leading zeros are kept ("07" on a jersey is not "7"); callers that compare values use ``int()``.
    """
    text = " ".join(text.strip().lower().split())
    sign = ""
    for prefix, prefix_sign in (("minus ", "-"), ("negative ", "-"), ("-", "-"), ("+", "")):
        if text.startswith(prefix):
            sign, text = prefix_sign, text[len(prefix) :].strip()
            break
    if text in _NUMBER_WORDS:
        digits = str(_NUMBER_WORDS[text])
    elif _GROUPED_DIGITS.fullmatch(text):
        digits = text.replace(" ", "").replace(",", "")
    else:
        return None
    return ("" if digits.strip("0") == "" else sign) + digits


@register_mode("vqav2_num_str_only_score")
def vqav2_num_str_only_score(pred: str, gt: str) -> int:
    pred_int = integer_text(pred)
    return int(pred_int is not None and pred_int == integer_text(gt))


@register_mode("dvqa_int_only_score")
def dvqa_int_only_score(pred: str, gt: str) -> int:
    pred_int, gt_int = integer_text(pred), integer_text(gt)
    return int(pred_int is not None and gt_int is not None and int(pred_int) == int(gt_int))


# Per math_verify step (two parses and a comparison), and the hard limit for a whole check.
_MATH_TIMEOUT_S = 3
_MATH_DEADLINE_S = 10.0
# Parsed answers are short; long inputs are where sympy's worst cases live.
_MATH_MAX_CHARS = 1000


@register_mode("math_score")
def math_score(pred: str, gt: str) -> int:
    return int(math_equal(pred, gt))


@register_mode("latex_score")
def latex_score(pred: str, gt: str) -> int:
    """math_verify equality, only when one side is LaTeX or a fraction; plain text is left to other modes."""
    looks_latex = any("\\" in s or re.fullmatch(r"-?\d+\s*/\s*\d+", s) for s in (pred, gt))
    return int(bool(looks_latex) and math_equal(pred, gt))


def math_equal(pred: str, gt: str) -> bool:
    """math_verify equivalence within a time limit, safe to call from any thread."""
    if max(len(pred), len(gt)) > _MATH_MAX_CHARS:
        return False
    if threading.current_thread() is threading.main_thread():
        return _math_verify(pred, gt, _MATH_TIMEOUT_S)
    # math_verify times out with signal.alarm, which only a main thread may set: from any other
    # thread, with a timeout it raises (so every answer would score 0) and without one sympy can
    # hang the thread (holding the GIL, slowing every other). So off the main thread the check runs
    # in a worker process, whose main thread has the alarm, and which is killed if it overruns.
    with _worker_slots:
        try:
            worker = _idle_workers.get_nowait()
        except queue.Empty:
            worker = _MathWorker()
        verdict = worker.check(pred, gt)
        if verdict is None:
            worker.kill()
            return False
        _idle_workers.put(worker)
        return verdict


def _math_verify(pred: str, gt: str, timeout: int | None) -> bool:
    from math_verify import parse, verify  # sympy is slow to import; only math modes need it

    def as_latex(text: str) -> str:
        return text if "$" in text or "\\boxed" in text else f"${text}$"

    try:
        gold = parse(as_latex(gt), parsing_timeout=timeout)
        target = parse(as_latex(pred), parsing_timeout=timeout)
        return bool(gold and target and verify(gold, target, timeout_seconds=timeout))
    except Exception:  # noqa: BLE001 - sympy on model text can fail any way; that is "not equal"
        return False


class _MathWorker:
    """A child Python process answering math_verify checks, one JSON line each way.

    A plain subprocess rather than multiprocessing: spawn and forkserver re-import the caller's
    ``__main__`` (a script without a main guard would run again), and fork copies locks that other
    threads may hold.
    """

    def __init__(self) -> None:
        paths = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from rollkit.answers import _serve_math; _serve_math()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))},
            start_new_session=True,  # Ctrl-C is the parent's to handle; the child ends at stdin EOF
        )
        if self.check("1", "1", deadline=60.0) is None:  # first check pays sympy's import
            self.kill()
            raise RuntimeError("the math_verify worker process did not start")

    def check(self, pred: str, gt: str, deadline: float | None = None) -> bool | None:
        """The verdict, or None when the worker overran the deadline or died."""
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(json.dumps([pred, gt]) + "\n")
            stdin.flush()
            # One request is outstanding at a time, so nothing sits in stdout's buffer unseen.
            ready, _, _ = select.select([stdout], [], [], deadline or _MATH_DEADLINE_S)
            line = stdout.readline() if ready else ""
        except (OSError, ValueError):
            return None
        return bool(json.loads(line)) if line else None

    def kill(self) -> None:
        self._process.kill()
        self._process.wait()


def _serve_math() -> None:
    for line in sys.stdin:
        pred, gt = json.loads(line)
        print(json.dumps(_math_verify(pred, gt, _MATH_TIMEOUT_S)), flush=True)


_idle_workers: queue.SimpleQueue[_MathWorker] = queue.SimpleQueue()
_worker_slots = threading.BoundedSemaphore(os.cpu_count() or 4)


# ---------------------------------------------------------------- llm judge (async)

_judge: JudgeFn | None = None
_verdicts: dict[tuple[str, str, str | None], int] = {}
_in_flight: dict[tuple[str, str, str | None], tuple[asyncio.AbstractEventLoop, asyncio.Task[int]]] = {}
_MAX_VERDICTS = 100_000


def set_llm_judge(fn: JudgeFn | None) -> None:
    """Install ``fn(pred, gt, question) -> Awaitable[0/1]`` as the judge; clears cached verdicts."""
    global _judge
    _judge = fn
    _verdicts.clear()
    _in_flight.clear()


async def check_answer_async(
    answer_pred: object,
    answer_gt: object,
    mode: str | Sequence[str],
    *,
    question: str | None = None,
    image: object = None,
) -> int:
    """``check_answer`` that can also use ``llm_judge``; the judge is only asked if no other mode matched.

    Judge errors propagate: a failed call is not a wrong answer. ``image`` is accepted for symmetry.
    """
    names = _mode_names(mode)
    if _check_sync(answer_pred, answer_gt, [name for name in names if name not in ASYNC_MODES]):
        return 1
    pred = _as_text(answer_pred)
    if "llm_judge" not in names or not pred:
        return 0
    for gt in _ground_truths(answer_gt):
        if await _judge_verdict(pred, gt, question):
            return 1
    return 0


async def _judge_verdict(pred: str, gt: str, question: str | None) -> int:
    if pred.casefold() == gt.casefold():
        return 1  # no call needed to see these are the same
    key = (pred, gt, question)
    if key in _verdicts:
        return _verdicts[key]
    if _judge is None:
        raise RuntimeError("mode 'llm_judge' needs a judge: call set_llm_judge(fn) first")
    # Monte-Carlo continuations often reach the same answer at once: share one call per key.
    loop = asyncio.get_running_loop()
    entry = _in_flight.get(key)
    if entry is None or entry[0] is not loop:
        entry = (loop, loop.create_task(_ask_judge(_judge, key)))
        _in_flight[key] = entry
    return await asyncio.shield(entry[1])


async def _ask_judge(judge: JudgeFn, key: tuple[str, str, str | None]) -> int:
    try:
        verdict = 1 if await judge(*key) == 1 else 0
    finally:
        _in_flight.pop(key, None)
    if judge is _judge:  # a verdict of a replaced judge is not cached
        if len(_verdicts) >= _MAX_VERDICTS:
            _verdicts.pop(next(iter(_verdicts)))
        _verdicts[key] = verdict
    return verdict


# ---------------------------------------------------------------- dataset -> modes

# First row with a keyword inside the lower-cased dataset name wins, so specific names come first
# ("clevr_math" before "math", "docvqa" before "dvqa").
_DATASET_MODES: list[tuple[tuple[str, ...], list[str]]] = [
    (("vqav2",), ["vqav2_num_str_only_score", "vqa_score"]),
    (("chartqa",), ["relaxed_accuracy"]),
    (("docvqa", "infovqa", "infographic"), ["anls"]),
    (("dvqa",), ["dvqa_int_only_score"]),
    (("raven",), ["raven_score_integer_only", "raven_score_alphabet_only"]),
    (("sroie", "clevr_math"), ["relaxed_accuracy", "vqa_score", "mc_score"]),
    (("mavis",), ["vqa_score", "mc_score", "math_score", "latex_score"]),
    (("math", "geo"), ["math_score", "mc_score"]),
]
DEFAULT_MODES = ["vqa_score"]


def get_mode(dataset_name: str) -> list[str]:
    """Scoring modes for a dataset, chosen by keywords in its name (table above)."""
    name = dataset_name.lower()
    for keywords, modes in _DATASET_MODES:
        if any(keyword in name for keyword in keywords):
            return list(modes)
    return list(DEFAULT_MODES)
