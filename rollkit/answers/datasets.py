"""Which scoring modes a dataset uses, chosen by keywords in its name."""

from __future__ import annotations

from collections.abc import Sequence

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
    (("gsm8k", "gsm", "svamp", "asdiv", "aime", "amc", "olympiad"), ["math_score"]),
    (("mmbench", "scienceqa", "mmmu", "seedbench", "seed_bench", "mmstar", "mcq", "choice"),
     ["mc_score", "vqa_score"]),
]
DEFAULT_MODES = ["vqa_score"]


def get_mode(dataset_name: str) -> list[str]:
    """Scoring modes for a dataset, chosen by keywords in its name (table above)."""
    return choose_modes(dataset_name)[0]


def choose_modes(dataset_name: str) -> tuple[list[str], str]:
    """The modes for a dataset and, in words, why: runs print it at the start and record the modes."""
    name = dataset_name.lower()
    for keywords, modes in _DATASET_MODES:
        hit = next((keyword for keyword in keywords if keyword in name), None)
        if hit:
            return list(modes), f"--dataset-name {dataset_name!r} contains {hit!r}"
    if not name:
        return list(DEFAULT_MODES), "no --dataset-name or --scoring-mode given: the default"
    return list(DEFAULT_MODES), f"--dataset-name {dataset_name!r} matches no known dataset: the default"


def resolve_modes(scoring_mode: str | None, dataset_name: str = "", checkers: Sequence[str] = ()) -> tuple[list[str], str]:
    """The modes a run checks answers with, and why, from its flags: `--scoring-mode` (comma-separated)
    when given, else the dataset name's; `--answer-checker`s are added either way. Raises ValueError
    (CheckerError for a checker that does not load) naming what is unknown."""
    from rollkit.answers.modes import known_mode, scoring_modes

    if scoring_mode:
        modes, why = [m.strip() for m in scoring_mode.split(",") if m.strip()], "--scoring-mode"
    else:
        modes, why = choose_modes(dataset_name)
    modes += [c for c in checkers if c not in modes]
    if checkers:
        why += " plus --answer-checker"
    unknown = [mode for mode in modes if not known_mode(mode)]
    if unknown or not modes:
        raise ValueError(f"unknown scoring mode {','.join(unknown) or '(none)'}; known: {', '.join(scoring_modes())}, "
                         "or a checker of your own as module:function (README: answer checking)")
    return modes, why
