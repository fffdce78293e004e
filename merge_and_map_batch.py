r"""Pack rollouts into Batch API files for step-wise verification, and map the results back.

    # pack: one judge request per rollout, cut into files under every limit at once
    python merge_and_map_batch.py pack --rollouts rollout_output_data_files/vqav2_4k/ \
        --out-dir batch_files/vqav2_4k --model gpt-4.1-nano-3 [--target azure|openai|vllm] \
        [--max-lines N --max-bytes B --max-tokens-per-file T]

    # then: python batch_processor.py --batch-dir batch_files/vqav2_4k --azure-endpoint URL --model ...

    # map: every rollout with its verdict (conclusion, judge_first_incorrect_step, ...)
    python merge_and_map_batch.py map --rollouts rollout_output_data_files/vqav2_4k/ \
        --results batch_files/vqav2_4k/results --output verified_output_data_files/vqav2_4k.jsonl

    # the seed's form still works, with its folder convention (pack, or map with --map):
    python merge_and_map_batch.py --split=vqav2_4k --model=gpt-4.1-nano-3

Folder convention of --split S (relative to where you run it): rollouts are read from
rollout_output_data_files/S/, batch files are written to batch_files/S/ (with manifest.json,
packed_ids.jsonl, ledger/, results/), and `map` writes verified_output_data_files/S.jsonl.

pack is deterministic (the same rollouts give byte-identical files) and incremental: rollouts
already in a packed file of --out-dir, or with a good result in --verified files, are left out, so
running it again after new rollouts arrive packs only the new ones. Rollouts need `response` and a
question (`original_question`, or `question`, whose `<question>` block is used when it holds a
whole rollout prompt); images (`images`, else `image_path`, else `image`: the first that names
files that exist; --image-root DIR for relative paths) are attached as data URLs. A rollout whose
image cannot be opened is never packed: it goes to pack.errors.jsonl with the fields tried. The custom_id is the
`rollout_id`, or `<entry_id>:r<k>` for rollouts without one (the k-th rollout of an entry in
reading order: give `map` the same paths in the same order).

--target writes each line as its service accepts it: azure `"url": "/chat/completions"` with the
deployment as `model` (the seed's files); openai `/v1/chat/completions` with the model; vllm
`/v1/chat/completions` with the served model name, for GPU nodes:
    vllm run-batch -i batch_files/vqav2_4k/vqav2_4k_0001.jsonl \
        -o batch_files/vqav2_4k/results/vqav2_4k_0001.output.jsonl --model Qwen/Qwen2.5-VL-7B-Instruct
(pack with --target vllm --model Qwen/Qwen2.5-VL-7B-Instruct: the lines' model must be the served name;
add --max-model-len N, the server's context, or lines whose reply budget does not fit are answered 400).
batch_processor.py rewrites a line only where its endpoint needs another url or model.
map joins by rollout_id, else the seed's unique_id, else the id pack derived. It reads OpenAI and
Azure output/error files, `vllm run-batch` output and the seed's `*_verification_results.json`;
--results may name a batch folder (its results/ is read).
Rollouts with no result yet are written with verification_status "pending" and counted.
Exit status: 0 done, 1 fatal error (unreadable input, a folder packed with other settings), 2 bad usage
or an empty input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rollkit.batch.limits import RESULTS_DIR, TARGETS, FileLimits, target_from_flags
from rollkit.batch.mapping import map_results
from rollkit.batch.pack import Packer, PackError, PackSettings
from rollkit.batch.verify_requests import DEFAULT_MAX_COMPLETION_TOKENS, JudgePrompt, PromptFileError
from rollkit.cli.common import add_image_root_flag, honour_ctrl_c, setup_logging
from rollkit.content.inputs import EmptyInput, InputError, check_not_empty
from rollkit.store.result_log import LogLockedError

ROLLOUTS_ROOT = Path("rollout_output_data_files")
BATCH_ROOT = Path("batch_files")
VERIFIED_ROOT = Path("verified_output_data_files")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", help="the seed's folder convention (see above) for the defaults")
    parser.add_argument("--rollouts", nargs="+", help="rollout files, folders or globs (default: from --split)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="merge_and_map_batch.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="pack rollouts into batch input files")
    _common(pack)
    pack.add_argument("--out-dir", type=Path, help="folder of the batch files (default: batch_files/SPLIT)")
    pack.add_argument("--model", required=True,
                      help="`model` of every line: the deployment name on Azure, the served model name on vLLM")
    pack.add_argument("--target", choices=sorted(TARGETS),
                      help="whose limits, line url and model to write (default: from the endpoint flags, else azure)")
    routes = pack.add_argument_group("endpoint flags (only pick the default --target; pack calls nothing)")
    routes.add_argument("--azure-endpoint", help="Azure OpenAI resource: --target azure")
    routes.add_argument("--base-url", help="OpenAI or another Batch API: --target openai")
    routes.add_argument("--port", type=int, help="a local vLLM server: --target vllm (run the files with vllm run-batch)")
    pack.add_argument("--max-lines", type=int, help="requests per file (default: 100,000 azure, 50,000 openai)")
    pack.add_argument("--max-bytes", type=int, help="bytes per file (default: 200,000,000)")
    pack.add_argument("--max-tokens-per-file", type=int,
                      help="estimated tokens per file, 0 = no cap (default: 50M azure, none openai)")
    pack.add_argument("--max-completion-tokens", type=int, default=DEFAULT_MAX_COMPLETION_TOKENS,
                      help=f"judge reply budget per request (default: {DEFAULT_MAX_COMPLETION_TOKENS})")
    pack.add_argument("--max-model-len", type=int, metavar="N",
                      help="the served model's context (vllm's --max-model-len): each line's max_completion_tokens "
                           "is lowered so its prompt and reply fit in N; a line that cannot keep room for a reply "
                           "goes to pack.errors.jsonl (over_context). Without it `vllm run-batch` answers 400 to "
                           "lines over the context and still exits 0")
    pack.add_argument("--max-image-side", type=int, help="downscale images so the longest side fits")
    add_image_root_flag(pack)
    pack.add_argument("--prompt-file", metavar="FILE",
                      help="the judge's template instead of rollkit/prompts/verify_steps.txt: text with "
                           "{{question}} and {{solution}}; its name and sha256 go into manifest.json and map's output")
    pack.add_argument("--prefix", help="file name prefix (default: the split, or 'batch')")
    pack.add_argument("--verified", nargs="+", default=[],
                      help="result files or folders: rollouts with a good result there are left out")
    mapping = commands.add_parser("map", help="join batch results back onto the rollouts")
    _common(mapping)
    mapping.add_argument("--results", nargs="+", help="result files or folders (default: batch_files/SPLIT/results)")
    mapping.add_argument("--output", type=Path, help="output JSONL (default: verified_output_data_files/SPLIT.jsonl)")
    mapping.add_argument("--verification-model", help="model name to record when results do not say it")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    if not argv or argv[0] not in ("pack", "map", "-h", "--help"):
        # the seed's command line had no subcommand: it packed, and mapped with --map
        argv = ["map", *[a for a in argv if a != "--map"]] if "--map" in argv else ["pack", *argv]
    args = parser.parse_args(argv)
    if args.rollouts is None:
        if not args.split:
            parser.error("give --rollouts, or --split to use rollout_output_data_files/SPLIT/")
        args.rollouts = [str(ROLLOUTS_ROOT / args.split)]
    if args.command == "pack" and args.max_model_len is not None and args.max_model_len < 1:
        parser.error("--max-model-len must be a positive number of tokens")
    if args.command == "pack":
        args.target = target_from_flags(args.target, azure_endpoint=args.azure_endpoint, base_url=args.base_url,
                                        port=args.port)
    if args.command == "pack" and args.out_dir is None:
        if not args.split:
            parser.error("give --out-dir, or --split to use batch_files/SPLIT/")
        args.out_dir = BATCH_ROOT / args.split
    if args.command == "map":
        if args.results is None and not args.split:
            parser.error("give --results, or --split to use batch_files/SPLIT/results/")
        if args.output is None and not args.split:
            parser.error("give --output, or --split to use verified_output_data_files/SPLIT.jsonl")
        args.results = args.results or [str(BATCH_ROOT / args.split / RESULTS_DIR)]
        args.output = args.output or VERIFIED_ROOT / f"{args.split}.jsonl"
    return args


def pack_settings(args: argparse.Namespace) -> PackSettings:
    defaults = TARGETS[args.target].limits
    tokens = defaults.max_tokens if args.max_tokens_per_file is None else (args.max_tokens_per_file or None)
    limits = FileLimits(args.max_lines or defaults.max_lines, args.max_bytes or defaults.max_bytes, tokens)
    return PackSettings(out_dir=args.out_dir, model=args.model, target=args.target, limits=limits,
                        prefix=args.prefix or (Path(args.split).name if args.split else "batch"),
                        max_completion_tokens=args.max_completion_tokens, max_image_side=args.max_image_side,
                        max_model_len=args.max_model_len, verified=args.verified, image_root=args.image_root,
                        prompt=JudgePrompt.from_file(args.prompt_file) if args.prompt_file else JudgePrompt.built_in())


def run_pack(args: argparse.Namespace) -> None:
    report = Packer(pack_settings(args)).run(args.rollouts)
    print(f"packed {report.requests} requests into {len(report.new_files)} new files in {args.out_dir} "
          f"(left out: {report.already_packed} already packed, {report.already_verified} already verified, "
          f"{report.duplicates} duplicate ids; {report.errors} errors in pack.errors.jsonl)")
    for entry in report.new_files:
        print(f"  {entry['name']}: {entry['lines']} lines, {entry['bytes']:,} bytes, "
              f"~{entry['tokens']:,} tokens")


def run_map(args: argparse.Namespace) -> None:
    report = map_results(args.rollouts, args.results, args.output, args.verification_model)
    print(report.summary())
    print(f"written to {args.output}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.verbose)
    honour_ctrl_c()
    try:
        check_not_empty(args.rollouts)
        if args.command == "pack":
            run_pack(args)
        else:
            run_map(args)
    except (EmptyInput, PromptFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (PackError, InputError, LogLockedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
