"""Which scoring modes a dataset uses, chosen by keywords in its name."""

from __future__ import annotations

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
