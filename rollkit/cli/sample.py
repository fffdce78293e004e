r"""Sample N candidate answers per question (stage 1 of rejection sampling).

    python sampling.py --input_file data/input.json --output_file data/sampled.jsonl \
        --model_name my-model --port 31415 --concurrent_requests 10 --answers_per_question 10

Any OpenAI-compatible server: `--base-url http://host:8000/v1` (key from OPENAI_API_KEY or the
variable named by `--api-key-env`); many endpoints: `--endpoints endpoints.toml`. Resumable: run the
same command again after a crash; finished records are skipped and paid replies are replayed.
"""

from __future__ import annotations

import argparse

from rollkit.cli import common as cli
from rollkit.stages.rejection import SamplingParams, sample_candidates, sampling_bodies, sampling_outcome
from rollkit.stages.runner import StageConfig, dry_run, execute


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("sample", "sampling.py", __doc__)
    cli.add_io_flags(parser)
    parser.add_argument("--model_name", "--model", dest="model", required=True, help="model to sample from")
    parser.add_argument("--port", type=int, help="local vLLM/SGLang server on 127.0.0.1:PORT")
    parser.add_argument("--cache_file", help="request journal (default: OUTPUT.journal.jsonl)")
    cli.add_sampling_flags(parser)
    cli.add_endpoint_flags(parser)
    cli.add_run_flags(parser)
    return parser


async def run(args: argparse.Namespace) -> int:
    params = SamplingParams(args.model, args.n, args.temperature, args.max_tokens, not args.no_seed,
                            args.max_image_side, cli.endpoints_take_n(args),
                            drop_truncated=args.drop_truncated)
    items = cli.read_inputs(args)
    if args.dry_run:
        dry_run(items, lambda item, eid: sampling_bodies(item.record, item.source, eid, params),
                args.model, args.price_in, args.price_out)
        return 0
    pools = {"generator": cli.build_pool(args, args.model, args.port)}

    def make_process(clients):
        async def process(item, eid):
            return sampling_outcome(await sample_candidates(clients["generator"], item.record, item.source,
                                                            eid, params))
        return process

    await execute("sampling", StageConfig.from_args(args), items, pools, make_process)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run_main(run(args), args.verbose)
