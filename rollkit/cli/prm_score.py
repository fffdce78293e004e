r"""`rollkit prm-score`: step scores from a served generative PRM, on rollouts or candidate files.

    rollkit prm-score --input rollouts.jsonl --output scored.jsonl --model_name my-prm \
        --base-url http://127.0.0.1:8000/v1 --text-only

Each rollout gets `prm_step_scores` (P(good) / (P(good) + P(bad)) per step) and `prm_score` (their
--aggregate); a record of N candidates (`generated_answers`) gets a list of each. The PRM is asked
the conversation `export --format visualprm` trains it on (same system prompt, step tokens, image
placement). --prm-mode one-request uses vLLM's prompt_logprobs (one request per solution);
per-step asks one request per step prefix (any server with logprobs); auto probes once.
Resumable and journaled like every stage.
"""

from __future__ import annotations

import argparse
import re
import sys

from rollkit.cli import common as cli
from rollkit.content.inputs import iter_inputs
from rollkit.content.prm_turns import PromptFileError, StepTokens, system_prompt
from rollkit.stages.prm import AGGREGATES, MODES, PrmParams, PrmScorer
from rollkit.stages.prm_conversation import prm_record_key
from rollkit.stages.runner import StageConfig, execute


def _regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"--step-split {text!r}: {exc}") from exc


def _tokens(text: str) -> StepTokens:
    try:
        return StepTokens.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rollkit prm-score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_io_flags(parser)
    parser.add_argument("--model_name", "--model", dest="model", required=True, help="the served PRM")
    parser.add_argument("--api_port", "--port", dest="port", type=int, help="local server port")
    parser.add_argument("--cache_file", help="request journal (default: OUTPUT.journal.jsonl)")
    group = parser.add_argument_group("PRM options")
    group.add_argument("--prm-mode", choices=MODES, default="auto",
                       help="one-request (prompt_logprobs), per-step (top_logprobs), auto: probe once (default)")
    group.add_argument("--aggregate", choices=sorted(AGGREGATES), default="min",
                       help="prm_score from the step scores (default: min)")
    group.add_argument("--text-only", action="store_true", help="send the conversation without its images")
    group.add_argument("--step-split", type=_regex, metavar="REGEX",
                       help="split free-text candidates into steps at this regex (default: the step parser)")
    group.add_argument("--step-tokens", type=_tokens, default=StepTokens(), metavar="GOOD,BAD",
                       help="the step tokens the PRM was trained on (default: +,-)")
    group.add_argument("--prompt-file", help="the system prompt it was trained with (default: the export's)")
    group.add_argument("--top-logprobs", type=int, default=20, metavar="K",
                       help="per-step: top_logprobs asked (default: 20, OpenAI's and vLLM's cap)")
    group.add_argument("--prompt-logprobs", type=int, default=20, metavar="K",
                       help="one-request: prompt_logprobs asked; a bad token outside them is asked again "
                            "exactly (default: 20, vLLM's cap)")
    cli.add_endpoint_flags(parser)
    cli.add_run_flags(parser)
    return parser


async def run(args: argparse.Namespace) -> int:
    params = PrmParams(model=args.model, system=system_prompt(args.prompt_file, args.step_tokens),
                       tokens=args.step_tokens, mode=args.prm_mode, how=args.aggregate, text_only=args.text_only,
                       step_split=args.step_split, prompt_k=args.prompt_logprobs, top_k=args.top_logprobs,
                       max_image_side=args.max_image_side)
    items = iter_inputs(args.input, start=args.start, end=args.end, image_root=args.image_root)
    pools = {"prm": cli.build_pool(args, args.model, args.port)}
    config = StageConfig.from_args(args)
    config = StageConfig(**{**config.__dict__, "flags": {k: str(v) if isinstance(v, (re.Pattern, StepTokens))
                                                         else v for k, v in config.flags.items()}})
    await execute("prm-score", config, items, pools,
                  lambda clients: PrmScorer(clients["prm"], params).process, id_field="prm_id",
                  record_key=prm_record_key)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dry_run:
        print("error: --dry-run is not offered by prm-score yet", file=sys.stderr)
        return 2
    return cli.run_main(run(args), args.verbose, fatal=(PromptFileError,))


if __name__ == "__main__":
    sys.exit(main())
