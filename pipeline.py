r"""One command from questions to a training set: rollout -> pack -> batch -> map -> export
(-> report), every stage's output in one folder per dataset and split, in the seed's layout.

    python pipeline.py --config run.toml --dry-run     # the plan: commands, requests, tokens, cost
    python pipeline.py --config run.toml               # run it; run it again after any crash

run.toml (see rollkit/workflow/config.py for every key):

    root = "runs/vqav2"
    [endpoint]
    azure-endpoint = "https://NAME.openai.azure.com"
    [[dataset]]
    name = "vqav2"
    split = "4k"
    input = "data/vqav2_4k.jsonl"
    [rollout]
    model_name = "gpt-4.1"
    num-rollouts = 4
    mc-mode = "binary-search"
    [pack]
    model = "gpt-4.1-batch"
    [[export]]
    format = "trl-prm"
    labels = "consensus"
    output = "prm.parquet"
    split = "val=0.05"
    [report]

Every flag of the stage scripts can be set in its table, by its own name. Outputs below root:
rollout_output_data_files/<name>_<split>/, batch_files/<name>_<split>/,
verified_output_data_files/<name>_<split>.jsonl, training_data_files/<name>_<split>/, report/, and
pipeline.config.json (the config and every stage's command). A stage that finished is skipped on
the next run; one that was cut off resumes from its own journal, ledger and result logs.
Exit status: 0 done, 1 a stage failed, 2 bad config or input, 3 stopped by an outage (rerun later).
"""

from __future__ import annotations

import argparse
import sys

from rollkit.cli.common import honour_ctrl_c
from rollkit.workflow.config import ConfigError, load_config
from rollkit.workflow.runner import dry_run, run_plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipeline.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="run.toml")
    parser.add_argument("--dry-run", action="store_true", help="print the plan with estimates; run nothing")
    args = parser.parse_args(argv)
    honour_ctrl_c()  # its stages inherit Python's own SIGINT disposition from here on
    try:
        config = load_config(args.config)
        return dry_run(config) if args.dry_run else run_plan(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
