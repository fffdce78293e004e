r"""Rejection sampling end to end: sample N candidates, score each with a judge, keep the best.

    python reject.py --input_file data/input.json --output_file data/final_results.jsonl \
        --cache_file data/sampling_cache.jsonl --generator_model gen-model --scorer_model judge-model \
        --generator_port 31415 --scorer_port 31416 --concurrency 5 --answers_per_question 4

Each output record keeps every input field and adds `original_question`, `original_answers`,
`generated_answers`, `generated_scores`, `best_answer`, `best_score` and `selected` (best score at
least `--min-score`). `--sft-output FILE` writes the kept pairs as `conversations` for SFT.
The judge uses the generator's endpoint flags unless `--scorer-base-url`, `--scorer-endpoints`,
`--scorer-azure-endpoint` or `--scorer_port` is given. Every completed reply is journaled in
`--cache_file`, so a crash costs nothing: run the same command again.
"""

from __future__ import annotations

import argparse

from rollkit.cli import common as cli
from rollkit.cli.prm_flags import (
    add_prm_flags,
    add_scorer_kind_flag,
    candidate_scorer,
    placeholder_candidate,
    prm_dry_run_bodies,
    prm_params,
    refuse_flags_the_scorer_ignores,
)
from rollkit.content.prm_turns import PromptFileError
from rollkit.stages.rejection import (
    SamplingParams,
    ScoringParams,
    sample_candidates,
    sampling_bodies,
    sampling_outcome,
    scoring_body,
    write_sft,
)
from rollkit.stages.runner import StageConfig, dry_run, execute


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("reject", "reject.py", __doc__)
    cli.add_io_flags(parser)
    parser.add_argument("--generator_model", "--model_name", dest="generator_model", required=True)
    parser.add_argument("--scorer_model", required=True, help="judge model (the PRM with --scorer-kind prm)")
    parser.add_argument("--generator_port", "--port", dest="generator_port", type=int)
    parser.add_argument("--scorer_port", type=int)
    parser.add_argument("--cache_file", help="request journal (default: OUTPUT.journal.jsonl)")
    cli.add_sampling_flags(parser)
    cli.add_selection_flags(parser)
    add_scorer_kind_flag(parser)
    add_prm_flags(parser)
    cli.add_endpoint_flags(parser)
    cli.add_endpoint_flags(parser, prefix="scorer-")
    cli.add_run_flags(parser)
    return parser


def build_pools(args: argparse.Namespace) -> dict:
    generator = cli.build_pool(args, args.generator_model, args.generator_port)
    scorer = cli.build_judge_pool(args, "scorer-", args.scorer_model, args.scorer_port, args.generator_model,
                                  args.generator_port)
    return {"generator": generator, "scorer": scorer}


def make_process(args: argparse.Namespace, sampling: SamplingParams):
    def bind(clients):
        score = candidate_scorer(args, args.scorer_model, clients["scorer"])

        async def process(item, eid):
            fields = await sample_candidates(clients["generator"], item.record, item.source, eid, sampling)
            outcome = sampling_outcome(fields)
            if outcome.record is None:
                return outcome
            fields.update(await score(item, fields["generated_answers"]))
            outcome.incomplete = fields["failed_candidates"] + fields["failed_scores"] > 0
            return outcome
        return process
    return bind


def dry_run_bodies(args, sampling: SamplingParams):
    """A candidate is counted as long as it may get, in the judge's prompt or, for a PRM, in steps."""
    if args.scorer_kind == "prm":
        params = prm_params(args, args.scorer_model)
        candidate = placeholder_candidate(sampling.max_tokens)
        scored = lambda item: prm_dry_run_bodies(params, item, [candidate] * sampling.n)  # noqa: E731
    else:
        scoring, placeholder = ScoringParams(args.scorer_model, args.scorer_max_tokens), "x " * sampling.max_tokens
        scored = lambda item: [scoring_body(item.record, item.source, placeholder, scoring,  # noqa: E731
                                            args.max_image_side)] * sampling.n

    def bodies(item, eid):
        return sampling_bodies(item.record, item.source, eid, sampling) + scored(item)
    return bodies


async def run(args: argparse.Namespace) -> int:
    sampling = SamplingParams(args.generator_model, args.n, args.temperature, args.max_tokens,
                              not args.no_seed, args.max_image_side, cli.endpoints_take_n(args),
                              drop_truncated=args.drop_truncated)
    items = cli.read_inputs(args)
    if args.dry_run:
        dry_run(items, dry_run_bodies(args, sampling), args.generator_model, args.price_in, args.price_out)
        return 0
    await execute("reject", StageConfig.from_args(args), items, build_pools(args), make_process(args, sampling))
    if args.sft_output:
        write_sft(args.output, args.sft_output)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    refuse_flags_the_scorer_ignores(parser, args)
    return cli.run_main(run(args), args.verbose, fatal=(PromptFileError,))
