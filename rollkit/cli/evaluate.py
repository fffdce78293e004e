r"""`rollkit evaluate`: how good a PRM is, from `rollkit prm-score`'s output.

    rollkit evaluate scored.jsonl --out report/ --reference mc

Best-of-N: for questions with a known answer and N candidates (a record's `generated_answers`, or
the rollouts of one entry), the accuracy of each picker against n = 1, 2, 4 ... N: the PRM by each
aggregate (prm_min, prm_prod, prm_last, prm_mean), majority vote, the judge (where `generated_scores`
exist), a random pick (expected value) and the oracle (any of n right).
Step level, in ProcessBench's form: a reference first wrong step per rollout (-1: none) from
--reference (`processbench`: the records' own `label`; `mc`, `judge`, `consensus`: rollkit's
labels), and for each scorer (the PRM at each --threshold, the judge, Monte-Carlo) the accuracy on
erroneous solutions, on correct ones, and F1, their harmonic mean.
Writes OUT/evaluation.json, OUT/evaluation.html and two PNGs; report.py's page shows them when
its --out is the same folder. Exit status: 0 done, 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rollkit.answers import answer_formats, get_mode
from rollkit.cli.common import setup_logging
from rollkit.content.inputs import InputError
from rollkit.evaluation.processbench import REFERENCES
from rollkit.evaluation.summary import EvaluationInputError, evaluate, read_records, write
from rollkit.export.view import AnswerCheck


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rollkit evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="prm-score outputs (JSONL files, folders or globs)")
    parser.add_argument("--out", type=Path, required=True, help="folder for evaluation.json, the page and PNGs")
    parser.add_argument("--reference", choices=REFERENCES, default="mc",
                        help="where the reference first wrong step comes from (default: mc)")
    parser.add_argument("--threshold", type=float, action="append", metavar="T",
                        help="a step is wrong when its PRM score is below T; repeat for several (default: 0.5)")
    parser.add_argument("--dataset-name", default="", help="scoring modes for answers without is_correct")
    parser.add_argument("--answer-format", default="correct_answer", choices=answer_formats())
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    check = AnswerCheck(args.answer_format, tuple(get_mode(args.dataset_name)))
    try:
        result = evaluate(read_records(args.paths), check, args.reference, args.threshold or [0.5])
    except (EvaluationInputError, InputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    page = write(result, args.out)
    curves, steps = result["best_of_n"], result["step_level"]
    print(f"best-of-N: {curves['questions']} questions, N up to {max(curves['n'], default=0)}; step level: "
          f"{steps['solutions']} solutions against the {steps['reference']} reference")
    print(f"written to {page} and {args.out / 'evaluation.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
