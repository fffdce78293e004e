r"""Rollouts with Monte-Carlo step scores: K structured solutions per question, and for every step
the share of N continuations from it that still reach the right answer.

    python rollout.py --input input_data_files/VQAv2/questions.jsonl --output rollouts/vqav2.jsonl \
        --azure-endpoint https://NAME.openai.azure.com --deployment gpt-4.1 --model_name gpt-4.1 \
        --dataset-name vqav2 --num-rollouts 4 --num-mc 16 --mc-mode binary-search

    python rollout.py --input q.jsonl --output r.jsonl --base-url http://127.0.0.1:8000/v1 \
        --model_name m --num-rollouts 2 --num-mc 4 --answer-format correct_answer \
        --scoring-mode vqav2_num_str_only_score

Endpoints: `--base-url` (any OpenAI-compatible server; key from OPENAI_API_KEY unless it is on
this machine), `--port` (a local vLLM/SGLang server: continuations use `continue_final_message`),
`--azure-endpoint --deployment [--api-version]` (key from AZURE_API_KEY), or `--endpoints FILE.toml`
for many (`kind = "local"` for vLLM; `supports_n = false` for servers without `n`).

Answers are read with `--answer-format` and checked with `--scoring-mode` (comma-separated; default:
the modes `--dataset-name` implies, see accuracy_reward.py). `llm_judge` asks a judge endpoint
whether an answer no rule accepted means the reference (`--judge_model`, `--judge-base-url`,
`--judge-endpoints`, ...; default the generator's endpoint); verdicts are cached per answer and
journaled. Every input record needs a reference
answer (`answer`, `answers`, or a final assistant turn).

Output: one line per rollout, keyed `rollout_id` = `<entry_id>:r<k>`, with every input field and
`response`, `finish_reason`, `steps_with_score` (`step`, `score`, `num_mc_correct`, `num_mc_total`,
`measured`, `decided_early`), `score_kind` (`share`: each score is the share of continuations that
reached the answer; `label`: --mc-mode adaptive's hard 1.0/0.0 labels), `first_incorrect_step`
(0-based over perception + reasoning steps, first score of 0, or null), `parsing_failed` and
`parsing_failed_reason`, `predicted_answer`, `is_correct`, `model`, `usage` (this rollout's share of
every token it cost), `mc_usage` (the continuations alone) and `prompt` (the rollout's rendered
prompt text, each template's source and sha256, `max_image_side`: with the record's images that
rebuilds the messages sent). `--prompt-file rollout=my_prompt.txt` and
`--prompt-file rollout_continue=...` replace the bundled templates.
A rollout cut off at `--max-tokens` is kept as it stands, unscored, with `"finish_reason": "length"`
(not `parsing_failed`), and counted in the summary; `--drop-truncated` leaves it out (to the errors
file as `length`).
Refusals and failures go to `<output>.errors.jsonl` with their reason. Every reply is journaled in
`--cache_file` (default `<output>.journal.jsonl`): after a crash, run the same command again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rollkit.answers import ASYNC_MODES, answer_formats, scoring_modes, set_llm_judge
from rollkit.answers import resolve_modes as answer_modes
from rollkit.answers.equivalence_endpoint import endpoint_judge
from rollkit.cli import common as cli
from rollkit.stages.montecarlo import (
    MC_MODES,
    RolloutParams,
    SharedCalls,
    dry_run_bodies,
    rollout_units,
    run_rollout,
)
from rollkit.stages.rollout_prompts import TEMPLATE_NAMES, record_fields
from rollkit.stages.runner import StageConfig, dry_run, execute


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("rollout", "rollout.py", __doc__)
    cli.add_io_flags(parser)
    parser.add_argument("--model_name", "--model", dest="model", required=True, help="model to roll out")
    parser.add_argument("--port", type=int, help="local vLLM/SGLang server on 127.0.0.1:PORT")
    parser.add_argument("--cache_file", help="request journal (default: OUTPUT.journal.jsonl)")
    group = parser.add_argument_group("rollout options")
    group.add_argument("--dataset-name", default="", help="picks the scoring modes when --scoring-mode is absent")
    group.add_argument("--answer-format", default="correct_answer", choices=answer_formats(),
                       help="how answers are read from a reply (default: correct_answer)")
    group.add_argument("--scoring-mode", help=f"comma-separated, any of: {', '.join(scoring_modes())}, "
                       "or module:function (default: by --dataset-name; the run prints which)")
    group.add_argument("--answer-checker", action="append", default=[], metavar="MODULE:FUNCTION",
                       help="your own checker fn(prediction, reference) -> bool, added to the scoring modes "
                            "(or an installed entry point of group rollkit.answer_checkers)")
    group.add_argument("--num-rollouts", type=int, default=4, help="K rollouts per question (default: 4)")
    group.add_argument("--num-mc", type=int, default=16, help="N continuations per scored step (default: 16)")
    group.add_argument("--mc-mode", choices=MC_MODES, default="exhaustive",
                       help="exhaustive: every step (soft scores); binary-search: the first zero-score step in "
                            "O(log steps) probes (soft scores where measured); adaptive: the same search, each "
                            "probe in rounds that stop at the first success (hard 1/0 labels)")
    group.add_argument("--mc-round", type=int, default=4,
                       help="adaptive: continuations per round, one request with n (default: 4)")
    group.add_argument("--max-perception-steps", type=int, default=10,
                       help="asked of the model; a rollout with more is recorded unscored (default: 10)")
    group.add_argument("--max-reasoning-steps", type=int, default=10, help="the same for [Reasoning] (default: 10)")
    group.add_argument("--temperature", type=float, default=1.0, help="for rollouts and continuations")
    group.add_argument("--max-tokens", type=int, default=2048, help="per rollout (default: 2048)")
    group.add_argument("--drop-truncated", action="store_true",
                       help="leave rollouts cut off at --max-tokens out (to the errors file as `length`; default: "
                            "keep them as they stand, unscored, with finish_reason length)")
    group.add_argument("--prompt-file", action="append", default=[], metavar="NAME=PATH",
                       help="use PATH instead of the bundled template NAME (rollout or rollout_continue); "
                            "repeat for both")
    group.add_argument("--mc-max-tokens", type=int,
                       help="per continuation, which only finishes a solution (default: --max-tokens)")
    cli.add_request_shape_flags(group)
    cli.add_endpoint_flags(parser)
    judge = parser.add_argument_group("answer judge (scoring mode llm_judge)")
    judge.add_argument("--judge_model", help="model that decides whether an answer means the reference "
                                             "(default: --model_name); on Azure, its deployment")
    judge.add_argument("--judge_port", type=int, help="local server for the judge on 127.0.0.1:PORT")
    cli.add_endpoint_flags(parser, prefix="judge-")
    cli.add_run_flags(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.scoring_modes = resolve_modes(parser, args)
    args.templates = read_prompt_files(parser, args.prompt_file)
    for name in ("num_rollouts", "num_mc", "max_perception_steps", "max_reasoning_steps", "max_tokens", "mc_round",
                 "mc_max_tokens"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def resolve_modes(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    try:
        modes, why = answer_modes(args.scoring_mode, args.dataset_name, args.answer_checker)
    except ValueError as error:
        parser.error(str(error))
    args.scoring_mode = ",".join(modes)  # recorded in .config.json as what was used, not what was given
    print(f"answers: read as --answer-format {args.answer_format}, checked by {args.scoring_mode} ({why})",
          file=sys.stderr)
    return modes


def read_prompt_files(parser: argparse.ArgumentParser, given: list[str]) -> tuple[tuple[str, str, str], ...]:
    """(name, text, path) for each --prompt-file NAME=PATH, checked before anything is sent."""
    templates = []
    for item in given:
        name, _, path = item.partition("=")
        if name not in TEMPLATE_NAMES or not path:
            parser.error(f"--prompt-file {item}: expected NAME=PATH with NAME one of {', '.join(TEMPLATE_NAMES)}")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"--prompt-file {item}: cannot read {path} ({exc})")
        needed = {"{{question}}"} if name != "rollout_continue" else set()
        if not text.strip() or any(mark not in text for mark in needed):
            parser.error(f"--prompt-file {item}: {path} is empty or has no {{{{question}}}} placeholder")
        templates.append((name, text, str(Path(path).resolve())))
    return tuple(templates)


def build_pools(args: argparse.Namespace) -> dict:
    """The generator's endpoints, and the answer judge's when `llm_judge` is a scoring mode (its
    own `--judge-*` flags, else the generator's endpoint with --judge_model)."""
    pools = {"generator": cli.build_pool(args, args.model, args.port)}
    if ASYNC_MODES.intersection(args.scoring_modes):
        pools["judge"] = cli.build_judge_pool(args, "judge-", args.judge_model, args.judge_port, args.model, args.port)
    return pools


def build_params(args: argparse.Namespace) -> RolloutParams:
    return RolloutParams(
        model=args.model, num_rollouts=args.num_rollouts, num_mc=args.num_mc, mc_mode=args.mc_mode,
        mc_round=args.mc_round, mc_max_tokens=args.mc_max_tokens,
        answer_format=args.answer_format, scoring_modes=tuple(args.scoring_modes),
        max_perception_steps=args.max_perception_steps, max_reasoning_steps=args.max_reasoning_steps,
        temperature=args.temperature, max_tokens=args.max_tokens, use_n=cli.endpoints_take_n(args),
        seeded=not args.no_seed, max_image_side=args.max_image_side, templates=args.templates,
        drop_truncated=args.drop_truncated)


async def run(args: argparse.Namespace) -> int:
    params = build_params(args)
    items = cli.read_inputs(args, needs_answer=True, needs=record_fields(params))
    if args.dry_run:
        dry_run(items, dry_run_bodies(params), args.model, args.price_in, args.price_out)
        return 0
    pools = build_pools(args)

    def make_process(clients):
        calls = SharedCalls(clients["generator"])
        if "judge" in clients:
            set_llm_judge(endpoint_judge(clients["judge"], args.judge_model or args.model))

        async def process(item, unit):
            return await run_rollout(calls, params, item.record, item.source, unit)
        return process

    await execute("rollout", StageConfig.from_args(args), items, pools, make_process, id_field="rollout_id",
                  units=rollout_units(params.num_rollouts))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return cli.run_main(run(args), args.verbose)
