r"""Score every sampled candidate with a judge model (stage 2 of rejection sampling).

    python score.py --input_file data/sampled.jsonl --output_file data/scored.jsonl \
        --model_name judge-model --api_port 31415 --concurrency 10

Adds `generated_scores` (one per candidate: a number from 0 to 10, or null when the judge's reply
could not be read or the call failed; the raw reply is kept in `judge_replies`). With
`--min-score`/`--sft-output` it also selects the best candidate per question, as reject.py does.
"""

from __future__ import annotations

import argparse

from rollkit.cli import common as cli
from rollkit.stages.rejection import ScoringParams, score_and_select, scoring_body, write_sft
from rollkit.stages.runner import Outcome, StageConfig, dry_run, execute


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("score", "score.py", __doc__)
    cli.add_io_flags(parser)
    parser.add_argument("--model_name", "--model", dest="model", required=True, help="judge model")
    parser.add_argument("--api_port", "--port", dest="port", type=int, help="local judge server port")
    parser.add_argument("--cache_file", help="request journal (default: OUTPUT.journal.jsonl)")
    cli.add_selection_flags(parser)
    cli.add_endpoint_flags(parser)
    cli.add_run_flags(parser)
    return parser


async def run(args: argparse.Namespace) -> int:
    params = ScoringParams(args.model, args.scorer_max_tokens)
    items = cli.read_inputs(args)
    if args.dry_run:
        dry_run(items, lambda item, _: [scoring_body(item.record, item.source, answer, params, args.max_image_side)
                                        for answer in item.record.get("generated_answers") or []],
                args.model, args.price_in, args.price_out)
        return 0
    pools = {"scorer": cli.build_pool(args, args.model, args.port)}

    def make_process(clients):
        async def process(item, eid):
            answers = item.record.get("generated_answers")
            if not isinstance(answers, list):
                return Outcome(error_reason="bad_input", message=f"{item.location}: no generated_answers list")
            fields = await score_and_select(clients["scorer"], item.record, item.source, answers, params,
                                            args.min_score, args.max_image_side)
            return Outcome(record=fields, incomplete=fields["failed_scores"] > 0)
        return process

    await execute("score", StageConfig.from_args(args), items, pools, make_process)
    if args.sft_output:
        write_sft(args.output, args.sft_output)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run_main(run(args), args.verbose)
