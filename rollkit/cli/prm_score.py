r"""`rollkit prm-score`: step scores from a served generative PRM, on rollouts or candidate files.

    rollkit prm-score --input rollouts.jsonl --output scored.jsonl --model_name my-prm \
        --base-url http://127.0.0.1:8000/v1 --text-only

Each rollout gets `prm_step_scores` (P(good) / (P(good) + P(bad)) per step) and `prm_score` (their
--aggregate); a record of N candidates (`generated_answers`) gets a list of each. The PRM is asked
the conversation `export --format visualprm` trains it on (same system prompt, step tokens, image
placement). --prm-mode one-request uses vLLM's prompt_logprobs (one request per solution);
per-step asks one request per step prefix (any server with logprobs); auto probes once.
Resumable and journaled like every stage. --dry-run counts the requests and tokens without sending
any (auto counted as one-request, the mode it tries first; a bad token outside the top k, asked
again, cannot be known before asking).
"""

from __future__ import annotations

import argparse
import sys

from rollkit.cli import common as cli
from rollkit.cli.prm_flags import add_prm_flags, prm_params
from rollkit.content.inputs import InputItem, RecordError, iter_inputs
from rollkit.content.prm_turns import PromptFileError
from rollkit.stages import prm
from rollkit.stages.prm_conversation import NoSteps, prm_record_key, record_solutions
from rollkit.stages.runner import StageConfig, dry_run, execute


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rollkit prm-score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_io_flags(parser)
    parser.add_argument("--model_name", "--model", dest="model", required=True, help="the served PRM")
    parser.add_argument("--api_port", "--port", dest="port", type=int, help="local server port")
    parser.add_argument("--cache_file", help="request journal (default: OUTPUT.journal.jsonl)")
    add_prm_flags(parser)
    cli.add_endpoint_flags(parser)
    cli.add_run_flags(parser)
    return parser


def dry_run_bodies(params: prm.PrmParams):
    """Every request the run would send (a solution without steps is bad input, never sent)."""
    def bodies(item: InputItem, _key: str) -> list[dict]:
        try:
            solutions = record_solutions(item.record, params.step_split)
        except NoSteps as exc:
            raise RecordError(str(exc)) from exc
        return prm.dry_run_bodies(params, item, solutions.steps)
    return bodies


async def run(args: argparse.Namespace) -> int:
    params = prm_params(args, args.model)
    items = iter_inputs(args.input, start=args.start, end=args.end, image_root=args.image_root)
    if args.dry_run:
        dry_run(items, dry_run_bodies(params), args.model, args.price_in, args.price_out)
        return 0
    pools = {"prm": cli.build_pool(args, args.model, args.port)}
    await execute("prm-score", StageConfig.from_args(args), items, pools,
                  lambda clients: prm.PrmScorer(clients["prm"], params).process, id_field="prm_id",
                  record_key=prm_record_key)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run_main(run(args), args.verbose, fatal=(PromptFileError,))


if __name__ == "__main__":
    sys.exit(main())
