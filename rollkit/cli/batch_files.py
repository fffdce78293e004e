r"""Pack rollouts into Batch API files for step-wise verification, and map the results back.
`rollkit pack` and `rollkit map` are the same commands as `merge_and_map_batch.py pack` and `map`.

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
from collections.abc import Callable
from pathlib import Path

from rollkit.batch.limits import RESULTS_DIR, target_from_flags
from rollkit.batch.pack import PackError
from rollkit.batch.verify_requests import PromptFileError
from rollkit.cli.common import honour_ctrl_c, setup_logging
from rollkit.content.inputs import EmptyInput, InputError, check_not_empty
from rollkit.store.result_log import LogLockedError

DESCRIPTION = __doc__
ROLLOUTS_ROOT = Path("rollout_output_data_files")
BATCH_ROOT = Path("batch_files")
VERIFIED_ROOT = Path("verified_output_data_files")


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", help="the seed's folder convention (see above) for the defaults")
    parser.add_argument("--rollouts", nargs="+", help="rollout files, folders or globs (default: from --split)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")


def finish_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The defaults --split gives, and the checks argparse cannot make, for `pack` and `map` alike."""
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


def run_checked(args: argparse.Namespace, run: Callable[[argparse.Namespace], None]) -> int:
    """Run `pack` or `map`; their errors as one line and an exit status (2 bad input, 1 fatal)."""
    setup_logging(args.verbose)
    honour_ctrl_c()
    try:
        check_not_empty(args.rollouts)
        run(args)
    except (EmptyInput, PromptFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (PackError, InputError, LogLockedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
