r"""A run's outputs to one page: index.html with PNG figures beside it.

    python report.py demo_output/ --out demo_output/report
    python report.py out/rollouts.jsonl out/verified.jsonl out/rollouts.jsonl.summary.json --out report/

Reads rollouts, verified rollouts, final results and their `.summary.json` files (files or
folders; a batch folder's requests and tokens are read off its results/). The page shows: step scores by step position, the share of
rollouts reaching the right answer per dataset, where Monte-Carlo and the judge put the first
error (a matrix), how many rollouts each label policy of export_dataset.py keeps, and requests,
429s, tokens and estimated cost per stage (list prices, or the stage's --price-in/--price-out).
examples.html, linked from it, shows rollouts themselves: those where Monte-Carlo and the judge
disagree first, then a sample of the others, each with its image thumbnail, every step marked by
its Monte-Carlo score, and the judge's first wrong step. Relative image paths start from the
`image_root` a stage recorded, else the file's folder, or --image-root DIR.
It states how many records it read and what it could not use.
Exit status: 0 done, 2 bad usage or nothing readable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rollkit.answers import answer_formats, get_mode
from rollkit.cli.common import add_image_root_flag, honour_ctrl_c, setup_logging
from rollkit.export.view import AnswerCheck
from rollkit.report.collect import Collector
from rollkit.report.examples import write_examples
from rollkit.report.figures import draw_all
from rollkit.report.page import write_page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="report.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="output files or folders of the stages")
    parser.add_argument("--out", type=Path, required=True, help="folder for index.html and the figures")
    parser.add_argument("--dataset-name", default="", help="scoring modes for rollouts without is_correct")
    parser.add_argument("--answer-format", default="correct_answer", choices=answer_formats())
    add_image_root_flag(parser)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    honour_ctrl_c()
    collector = Collector(AnswerCheck(args.answer_format, tuple(get_mode(args.dataset_name))), args.image_root)
    tallies = collector.read(args.paths)
    used = sum(tallies.records.values())
    if not used and not tallies.stages:
        print("error: nothing readable in " + ", ".join(args.paths), file=sys.stderr)
        for problem in tallies.unusable:
            print(f"  {problem}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    examples = write_examples(collector.examples.chosen(), args.out)
    page = write_page(tallies, draw_all(tallies, args.out), args.out, args.paths, examples.name)
    read = ", ".join(f"{n} {kind}" for kind, n in sorted(tallies.records.items())) or "no records"
    print(f"read {read}; {tallies.bad_lines} unreadable lines; {len(tallies.stages)} stages with request counts; "
          f"{len(tallies.unusable)} things not used (listed on the page)")
    print(f"written to {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
