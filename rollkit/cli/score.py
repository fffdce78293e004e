r"""Score every sampled candidate with a judge model (stage 2 of rejection sampling).

    python score.py --input_file data/sampled.jsonl --output_file data/scored.jsonl \
        --model_name judge-model --api_port 31415 --concurrency 10

Adds `generated_scores` (one per candidate: a number from 0 to 10, or null when the judge's reply
could not be read or the call failed; the raw reply is kept in `judge_replies`). With
`--min-score`/`--sft-output` it also selects the best candidate per question, as reject.py does.

`--scorer-kind prm` scores with a served generative PRM (`--model_name`) instead, as `reject.py
--scorer-kind prm` does: `prm_step_scores`, `prm_score` and `prm_failures` per candidate, and
`generated_scores` the aggregate of each candidate's step scores, from 0 to 1.
"""

from __future__ import annotations

import argparse

from rollkit.cli import common as cli
from rollkit.cli.prm_flags import (
    add_prm_flags,
    add_scorer_kind_flag,
    candidate_scorer,
    prm_dry_run_bodies,
    prm_params,
    refuse_flags_the_scorer_ignores,
)
from rollkit.content.prm_turns import PromptFileError
from rollkit.stages.rejection import ScoringParams, scoring_body, write_sft
from rollkit.stages.runner import Outcome, StageConfig, dry_run, execute


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("score", "score.py", __doc__)
    cli.add_io_flags(parser)
    parser.add_argument("--model_name", "--model", dest="model", required=True,
                        help="judge model (the PRM with --scorer-kind prm)")
    parser.add_argument("--api_port", "--port", dest="port", type=int, help="local judge server port")
    parser.add_argument("--cache_file", help="request journal (default: OUTPUT.journal.jsonl)")
    cli.add_selection_flags(parser)
    add_scorer_kind_flag(parser)
    add_prm_flags(parser)
    cli.add_endpoint_flags(parser)
    cli.add_run_flags(parser)
    return parser


def dry_run_bodies(args: argparse.Namespace):
    if args.scorer_kind == "prm":
        params = prm_params(args, args.model)
        return lambda item, _: prm_dry_run_bodies(params, item, item.record.get("generated_answers") or [])
    scoring = ScoringParams(args.model, args.scorer_max_tokens)
    return lambda item, _: [scoring_body(item.record, item.source, answer, scoring, args.max_image_side)
                            for answer in item.record.get("generated_answers") or []]


async def run(args: argparse.Namespace) -> int:
    items = cli.read_inputs(args)
    if args.dry_run:
        dry_run(items, dry_run_bodies(args), args.model, args.price_in, args.price_out)
        return 0
    pools = {"scorer": cli.build_pool(args, args.model, args.port)}

    def make_process(clients):
        score = candidate_scorer(args, args.model, clients["scorer"])

        async def process(item, eid):
            answers = item.record.get("generated_answers")
            if not isinstance(answers, list):
                return Outcome(error_reason="bad_input", message=f"{item.location}: no generated_answers list")
            fields = await score(item, answers)
            return Outcome(record=fields, incomplete=fields["failed_scores"] > 0)
        return process

    await execute("score", StageConfig.from_args(args), items, pools, make_process)
    if args.sft_output:
        write_sft(args.output, args.sft_output)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    refuse_flags_the_scorer_ignores(parser, args)
    return cli.run_main(run(args), args.verbose, fatal=(PromptFileError,))
