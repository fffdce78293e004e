r"""Parse an answer out of a model response and check it against the ground truth.

Library use (the logic lives in ``rollkit.answers``)::

    from rollkit.answers import parse_answer, check_answer, get_mode
    pred = parse_answer(response, "correct_answer")
    reward = check_answer(pred, "2", get_mode("vqav2_4k"))   # 0 or 1

Command line, printing the parsed answer and the 0/1 result as one JSON line::

    rollkit check-answer --pred '<correct_answer>$\boxed{two}$</correct_answer>' --gt 2 --mode vqa_score
    python accuracy_reward.py --pred '(B) a cat' --gt B --mode mc_score,vqa_score --format mc_letter
    python accuracy_reward.py --pred 'Answer: 1,000' --gt 1000 --dataset chartqa_test
"""

from __future__ import annotations

import argparse
import json

from rollkit.answers import answer_formats, check_answer, get_mode, parse_answer, scoring_modes
from rollkit.cli.common import new_parser


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("check-answer", "accuracy_reward.py", __doc__)
    parser.add_argument("--pred", required=True, help="the model response (or a bare answer)")
    parser.add_argument("--gt", required=True, action="append", help="ground truth; repeat for alternatives")
    parser.add_argument("--mode", help=f"comma-separated scoring modes: {', '.join(scoring_modes())}")
    parser.add_argument("--dataset", help="pick the modes from a dataset name instead of --mode")
    parser.add_argument(
        "--format", default="auto", choices=answer_formats(), help="answer format (default auto)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.mode) == bool(args.dataset):
        parser.error("give exactly one of --mode and --dataset")
    modes = args.mode.split(",") if args.mode else get_mode(args.dataset)
    parsed = parse_answer(args.pred, args.format)
    try:
        correct = check_answer(parsed, args.gt, modes)
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps({"parsed": parsed, "modes": modes, "correct": correct}, ensure_ascii=False))
    return 0
