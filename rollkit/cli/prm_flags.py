"""The PRM flags `prm-score`, `reject` and `score` share, defined once, and what they resolve to.

`reject`/`score --scorer-kind prm` score each candidate with a served generative PRM instead of a
1-10 judge: split into steps as `prm-score` splits free text, asked as `prm-score` asks, the best
kept by the `--aggregate` of its step scores (a probability from 0 to 1, so `--min-score` is too).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Awaitable, Callable

from rollkit.content.inputs import InputItem
from rollkit.content.prm_turns import StepTokens, system_prompt
from rollkit.net.client import ChatClient
from rollkit.stages import prm
from rollkit.stages.prm_conversation import split_steps
from rollkit.stages.rejection import ScoringParams, score_and_select, select_best

SCORER_KINDS = ("judge", "prm")
DRY_RUN_STEPS = 8  # reject's dry run: a sampled candidate is not known yet; counted as --max-tokens in 8 steps
# Score the candidates of one record: (item, answers) -> the fields scoring and selection add.
CandidateScorer = Callable[[InputItem, list[str]], Awaitable[dict]]


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


def add_scorer_kind_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scorer-kind", choices=SCORER_KINDS, default="judge",
                        help="judge: a 1-10 judge reply per candidate (default); prm: the step scores of a served "
                             "generative PRM (the PRM options below), the best by their --aggregate, 0 to 1")


def add_prm_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("PRM options")
    group.add_argument("--prm-mode", choices=prm.MODES, default="auto",
                       help="one-request (prompt_logprobs), per-step (top_logprobs), auto: probe once (default)")
    group.add_argument("--aggregate", choices=sorted(prm.AGGREGATES), default="min",
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


def refuse_flags_the_scorer_ignores(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A PRM option given with the judge, or the judge's reply budget with a PRM, would be ignored
    without a word: stop with exit 2 instead."""
    if args.scorer_kind == "prm":
        if args.scorer_max_tokens != parser.get_default("scorer_max_tokens"):
            parser.error("--scorer-max-tokens: the judge's reply budget; a PRM is asked for one token "
                         "(leave it out with --scorer-kind prm)")
        return
    group = next(g for g in parser._action_groups if g.title == "PRM options")
    given = [action.option_strings[0] for action in group._group_actions
             if getattr(args, action.dest) != action.default]
    if given:
        parser.error(f"{', '.join(given)}: PRM options, used only with --scorer-kind prm")


def prm_params(args: argparse.Namespace, model: str) -> prm.PrmParams:
    return prm.PrmParams(model=model, system=system_prompt(args.prompt_file, args.step_tokens),
                         tokens=args.step_tokens, mode=args.prm_mode, how=args.aggregate, text_only=args.text_only,
                         step_split=args.step_split, prompt_k=args.prompt_logprobs, top_k=args.top_logprobs,
                         max_image_side=args.max_image_side)


def candidate_scorer(args: argparse.Namespace, model: str, client: ChatClient) -> CandidateScorer:
    """How `reject`/`score` score and select: the judge, or (`--scorer-kind prm`) one PrmScorer for the
    stage, so auto's probe is made once."""
    if args.scorer_kind == "prm":
        scorer = prm.PrmScorer(client, prm_params(args, model))

        async def by_prm(item: InputItem, answers: list[str]) -> dict:
            fields = await scorer.score_candidates(item, answers)
            return {**fields, **select_best(answers, fields["generated_scores"], args.min_score)}
        return by_prm
    params = ScoringParams(model, args.scorer_max_tokens)

    async def by_judge(item: InputItem, answers: list[str]) -> dict:
        return await score_and_select(client, item.record, item.source, answers, params, args.min_score,
                                      args.max_image_side)
    return by_judge


def prm_dry_run_bodies(params: prm.PrmParams, item: InputItem, answers: list[str]) -> list[dict]:
    """What the PRM is sent for these candidates (those without steps are not asked)."""
    return prm.dry_run_bodies(params, item, [split_steps(str(answer), params.step_split) for answer in answers])


def placeholder_candidate(max_tokens: int) -> str:
    """A sampled candidate as long as it may get, in DRY_RUN_STEPS steps of the step format."""
    words = max(1, max_tokens // DRY_RUN_STEPS)
    body = "".join(f"<step_{i}>\n{'x ' * words}\n</step_{i}>\n" for i in range(1, DRY_RUN_STEPS + 1))
    return f"[Reasoning]\n{body}<correct_answer>\nx\n</correct_answer>"
