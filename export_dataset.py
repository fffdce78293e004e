r"""Labelled rollouts to training rows: TRL or OpenRLHF PRM rows, VisualPRM conversations, SFT
conversations, DPO pairs.

    python export_dataset.py --rollouts verified_output_data_files/vqav2_4k.jsonl \
        --format trl-prm --labels consensus --output training/vqav2_prm.parquet --split val=0.05

    python export_dataset.py --rollouts rollout_output_data_files/vqav2_4k/ --format sft \
        --labels mc-hard --output training/vqav2_sft.jsonl --dataset-name vqav2

    python export_dataset.py --rollouts verified_output_data_files/vqav2_4k.jsonl --format visualprm \
        --labels mc-hard --balance --step-tokens "<+>,<->" --output training/vqav2_visualprm.jsonl

Input: rollout.py outputs, `merge_and_map_batch.py map` outputs (either schema version) or the
seed's rollouts; files, folders or globs. Output: JSONL, or Parquet when --output ends in
.parquet; both load with HF `datasets` (`load_dataset("json"|"parquet", data_files=...)`).

Formats (--format): trl-prm (prompt, completions, labels: TRL's stepwise supervision), openrlhf-prm
(input with --placeholder-token after every step, value), sft (conversations with images; rollouts
that reach the right answer with every step good), pairs (prompt, chosen, rejected per question),
visualprm (VisualPRM's step-grading conversation: a system turn, then the image, the question and
step 1 in the first user turn, one assistant turn per step holding the good or bad step token, and
one user turn per further step). visualprm's options: --chat-schema conversations (`conversations`
from/value with `<image>`, plus `image`) or messages (`messages` with role/content parts, plus
`images`, as TRL's SFTTrainer takes them); --step-tokens GOOD,BAD (default "+,-"; the summary
counts rows where a step's text holds a token as a word of its own, e.g. `4 + 9`); --balance (as
many rows with an error as without, the surplus dropped by a hash of rollout_id); --error-sections
reasoning|perception (leave out rollouts whose first bad step is in the other section);
--prompt-file (the system prompt; {{good}} and {{bad}} are filled with the step tokens).

Labels (--labels): mc-hard (good when the Monte-Carlo score is above --threshold, default 0),
mc-soft (the score), judge (good before the judge's first incorrect step; all good when it says
Correct), consensus (only rollouts where both agree: both sound, or the same first error).
Steps Monte-Carlo never measured (binary search) drop the rollout unless --fill-unmeasured fills
them by the monotone rule (listed in the row's `filled_steps`). Rollouts with no verdict, a refused
or unparsed verdict, or an unparsed solution are dropped for the policies that need them; every
drop is counted by reason in the summary (also in OUTPUT.summary.json).

--split val=0.05 sends 5% of the questions (by a hash of entry_id: no question is in two splits)
to OUTPUT's `.val` file and the rest to `.train`. Rows whose content (all but their ids) repeats an
earlier row are dropped. The same input gives the same bytes. Image paths are written relative to
the output's folder (--absolute-images for absolute ones); relative ones in the input start from
the `image_root` an earlier stage recorded, else the input file's folder, or --image-root DIR.
Exit status: 0 done, 1 fatal (unreadable input file), 2 bad usage or no readable rollout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rollkit.answers import ASYNC_MODES, answer_formats, get_mode, scoring_modes
from rollkit.cli.common import add_image_root_flag, honour_ctrl_c, setup_logging
from rollkit.content.inputs import InputError
from rollkit.export.formats import DEFAULT_PLACEHOLDER, FORMATS
from rollkit.export.labels import POLICIES, Policy
from rollkit.export.run import Exporter, ExportSettings, VisualPRMSettings, nothing_exported, summary_lines
from rollkit.export.split import parse_splits
from rollkit.export.view import AnswerCheck
from rollkit.export.visualprm import CHAT_SCHEMAS, ERROR_SECTIONS, PromptFileError, StepTokens, system_prompt
from rollkit.store.atomic import write_json


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="export_dataset.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rollouts", nargs="+", required=True, help="rollout or verified files, folders or globs")
    p.add_argument("--format", dest="fmt", choices=FORMATS, required=True, help="row format")
    p.add_argument("--labels", choices=POLICIES, default="mc-hard", help="label policy (default: mc-hard)")
    p.add_argument("--output", type=Path, required=True, help="output .jsonl or .parquet")
    p.add_argument("--threshold", type=float, default=0.0, help="a step is good above this MC score (default: 0)")
    p.add_argument("--fill-unmeasured", action="store_true",
                   help="fill unmeasured steps by the monotone rule instead of dropping the rollout")
    p.add_argument("--split", help="NAME=SHARE[,NAME=SHARE], e.g. val=0.05; the rest is train")
    p.add_argument("--absolute-images", action="store_true", help="write absolute image paths")
    p.add_argument("--placeholder-token", default=DEFAULT_PLACEHOLDER, help="openrlhf-prm's step tag")
    add_image_root_flag(p)
    vp = p.add_argument_group("visualprm")
    vp.add_argument("--chat-schema", choices=CHAT_SCHEMAS, default="conversations",
                    help="conversations (from/value + image) or messages (role/content + images)")
    vp.add_argument("--step-tokens", default="+,-", help='GOOD,BAD step tokens (default "+,-"; e.g. "<+>,<->")')
    vp.add_argument("--balance", action="store_true", help="as many rows with an error as without")
    vp.add_argument("--error-sections", choices=ERROR_SECTIONS, default="all",
                    help="keep only rollouts whose first bad step (if any) is in this section")
    vp.add_argument("--prompt-file", help="system prompt text file ({{good}}, {{bad}} are filled)")
    p.add_argument("--dataset-name", default="", help="picks the scoring modes for rollouts without is_correct")
    p.add_argument("--answer-format", default="correct_answer", choices=answer_formats(),
                   help="how answers are read from rollouts without is_correct")
    p.add_argument("--scoring-mode", help=f"comma-separated, any of: {', '.join(scoring_modes())}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    return p


def settings_from(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ExportSettings:
    try:
        splits = parse_splits(args.split)
    except ValueError as exc:
        parser.error(str(exc))
    modes = [m.strip() for m in args.scoring_mode.split(",")] if args.scoring_mode else get_mode(args.dataset_name)
    unknown = [m for m in modes if m not in scoring_modes()]
    if unknown:
        parser.error(f"unknown --scoring-mode {','.join(unknown)}")
    if ASYNC_MODES.intersection(modes):
        parser.error("llm_judge needs a judge call per rollout; choose rule-based scoring modes")
    if not 0 <= args.threshold < 1:
        parser.error("--threshold must be in [0, 1)")
    return ExportSettings(inputs=args.rollouts, fmt=args.fmt, output=args.output, splits=splits,
                          policy=Policy(args.labels, args.threshold, args.fill_unmeasured),
                          answers=AnswerCheck(args.answer_format, tuple(modes)),
                          absolute_images=args.absolute_images, placeholder=args.placeholder_token,
                          image_root=args.image_root, visualprm=visualprm_settings(parser, args))


def visualprm_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> VisualPRMSettings:
    if args.fmt != "visualprm":
        given = [flag for flag, value in (("--balance", args.balance), ("--prompt-file", args.prompt_file),
                                          ("--error-sections", args.error_sections != "all"),
                                          ("--chat-schema", args.chat_schema != "conversations"),
                                          ("--step-tokens", args.step_tokens != "+,-")) if value]
        if given:
            parser.error(f"{', '.join(given)}: only for --format visualprm")
        return VisualPRMSettings()
    try:
        tokens = StepTokens.parse(args.step_tokens)
        system = system_prompt(args.prompt_file, tokens)
    except (ValueError, PromptFileError) as exc:
        parser.error(str(exc))
    return VisualPRMSettings(args.chat_schema, tokens, system, args.balance, args.error_sections)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    honour_ctrl_c()
    settings = settings_from(parser, args)
    try:
        counts = Exporter(settings).run()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(summary_lines(counts, settings)))
    write_json(f"{args.output}.summary.json", {"stage": "export", **counts.as_dict()})
    if counts.records == 0:
        print("error: no readable rollout in the input", file=sys.stderr)
        return 2
    if not sum(counts.rows.values()):
        print(f"error: {nothing_exported(counts)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
