r"""Run packed batch files through the Batch API: upload, create, poll, download, resubmit.

    # one Azure resource, as the seed (key in AZURE_API_KEY)
    python batch_processor.py --batch-dir batch_files/vqav2_4k --azure-endpoint https://RES.openai.azure.com \
        --model gpt-4.1-nano-3 --check-interval 5

    # many endpoints, each with its deployment, key variable and enqueued-token quota
    python batch_processor.py --batch-dir batch_files/vqav2_4k --endpoints endpoints.toml --model gpt-4.1-nano-3

    # OpenAI (key in OPENAI_API_KEY), or the emulator: --base-url http://127.0.0.1:PORT/v1
    python batch_processor.py --batch-dir batch_files/vqav2_4k --base-url https://api.openai.com/v1 --model gpt-4.1

    # where every file is: endpoint, batch id, state, lines done/failed, age (reads the ledgers only)
    python batch_processor.py --batch-dir batch_files/vqav2_4k --status

    # cancel every batch of the range that the ledgers hold open (recorded in the ledgers)
    python batch_processor.py --batch-dir batch_files/vqav2_4k --azure-endpoint URL --model ... --cancel

The seed's flags work too: --split S (= --batch-dir batch_files/S), --start-index/--end-index
(batch numbers as in the file names, from 1, both ends included: `--start-index 3 --end-index 13`
drives batch_0003 to batch_0013; a range that selects no file exits 2 saying which exist),
--check-interval in minutes (fractions allowed: 0.05 polls every 3 s). An endpoints.toml entry:

    [[endpoint]]
    name = "eastus"
    kind = "azure"                       # or "openai" (base_url ending in /v1)
    base_url = "https://RES-eastus.openai.azure.com"
    deployment = "gpt-4.1-nano-batch"    # the Global Batch deployment: every line's `model` is set to it
    key_env = "AZURE_EASTUS_KEY"
    enqueued_tokens = 50_000_000         # the deployment's quota (optional)

The run ends when every file of the range is done: each line has a good reply, a content-filter
refusal or another permanent failure (recorded, not resubmitted), or the file used up
--max-attempts. Results land in <batch-dir>/results/ for `merge_and_map_batch.py map`.

--expires-after DAYS sets the service's expiry on uploaded files and batch outputs (Azure: 14 to
30 days, which also raises its cap of batch files from 500 to 10,000; OpenAI: 1 hour to 30 days).

Ctrl-C stops polling and leaves the batches already created running on the service (they are paid
for); it prints how to resume polling them or cancel them.

Resumable: everything is recorded in <batch-dir>/ledger/ before and after each call, so after a
crash (even SIGKILL) the same command resumes polling the batches already created and never
uploads or creates a batch twice for the same lines. Several sessions may share a batch dir
(e.g. one per --start-index/--end-index range); each file is driven by one process at a time.
Exit status: 0 every file done, 1 fatal error (credentials, configuration, no manifest), 2 bad usage
(including a range that selects no file).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rollkit.batch.limits import LEDGER_DIR
from rollkit.batch.pack import PackError
from rollkit.batch.processor import DEFAULT_BATCH_MAX_OUTAGE_SECONDS, Processor, ProcessorSettings
from rollkit.batch.schedule import Slot
from rollkit.batch.service import BatchService, expiry_problem
from rollkit.batch.status import status_table
from rollkit.cli.common import add_endpoint_flags, run_main, setup_logging
from rollkit.net.endpoints import (
    Endpoint,
    EndpointConfigError,
    endpoint_from_flags,
    load_endpoints_toml,
    resolve_key,
)
from rollkit.store.atomic import write_json

BATCH_ROOT = Path("batch_files")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="batch_processor.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-dir", type=Path, help="folder written by `merge_and_map_batch.py pack`")
    p.add_argument("--split", help="the seed's convention: --batch-dir batch_files/SPLIT")
    p.add_argument("--model", help="deployment (Azure) or model (OpenAI) to run on, unless an endpoint names its own")
    p.add_argument("--enqueued-tokens", type=int, help="enqueued-token quota of the single endpoint given by flags")
    p.add_argument("--check-interval", type=float, default=5.0, help="minutes between checks (default: 5)")
    p.add_argument("--stale-after", type=float, default=360.0,
                   help="minutes without progress before a batch is cancelled and its lines resubmitted (default: 360)")
    p.add_argument("--max-attempts", type=int, default=5, help="tries per file (quota refusals do not count)")
    p.add_argument("--max-outage", type=float, default=DEFAULT_BATCH_MAX_OUTAGE_SECONDS, metavar="SECONDS",
                   help="stop (exit 3) once no endpoint has answered this long; the ledgers keep every "
                        "batch for a plain rerun (default: 3600)")
    p.add_argument("--start-index", type=int, metavar="N", help="first batch to drive, numbered from 1 (default: 1)")
    p.add_argument("--end-index", type=int, metavar="N", help="last batch to drive, included (default: the last)")
    p.add_argument("--expires-after", type=float, metavar="DAYS",
                   help="the service deletes uploads and outputs after DAYS (Azure 14-30, OpenAI 1/24-30)")
    p.add_argument("--status", action="store_true", help="print the table of every file and exit")
    p.add_argument("--cancel", action="store_true", help="cancel every batch of the range the ledgers hold open")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log every step")
    add_endpoint_flags(p, rate_limits=False)
    return p


def build_endpoints(args: argparse.Namespace) -> list[Endpoint]:
    if args.endpoints:
        endpoints = load_endpoints_toml(args.endpoints, default_model=args.model)
    else:
        endpoint = endpoint_from_flags(base_url=args.base_url, port=None, azure_endpoint=args.azure_endpoint,
                                       model=args.model, deployment=args.deployment, api_version=args.api_version,
                                       key_env=args.api_key_env)
        endpoint.enqueued_tokens = args.enqueued_tokens
        endpoints = [endpoint]
    names = [e.name for e in endpoints]
    if len(set(names)) != len(names):
        raise EndpointConfigError("endpoint names must be unique: the ledger records batches by endpoint name")
    return [resolve_key(e) for e in endpoints]


def save_config(args: argparse.Namespace, endpoints: list[Endpoint]) -> None:
    """The resolved configuration, without keys, next to the ledgers."""
    described = [{"name": e.name, "kind": e.kind, "base_url": e.base_url, "model": e.model, "deployment": e.deployment,
                  "api_version": e.api_version, "key_env": e.key_env, "enqueued_tokens": e.enqueued_tokens}
                 for e in endpoints]
    span = f"{args.start_index or 1}-{'end' if args.end_index is None else args.end_index}"
    path = args.batch_dir / LEDGER_DIR / f"processor.{span}.config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"endpoints": described, "check_interval_min": args.check_interval,
                      "stale_after_min": args.stale_after, "max_attempts": args.max_attempts,
                      "start_index": args.start_index, "end_index": args.end_index, "pid": os.getpid()}, indent=1)


def run(args: argparse.Namespace) -> int:
    endpoints = build_endpoints(args)
    if args.expires_after is not None:
        problems = {p for e in endpoints if (p := expiry_problem(e.kind, args.expires_after))}
        if problems:
            print("error: " + "; ".join(sorted(problems)), file=sys.stderr)
            return 2
    slots = [Slot(BatchService(e, args.model, args.expires_after), e.enqueued_tokens,
                  rest_base=max(1.0, args.check_interval * 60)) for e in endpoints]
    settings = ProcessorSettings(args.batch_dir, args.check_interval, args.stale_after, args.max_attempts,
                                 args.start_index, args.end_index, progress=not args.no_progress,
                                 max_outage=args.max_outage)
    processor = Processor(settings, slots)
    if args.cancel:
        cancelled = processor.cancel_open()
        print(f"cancelled {len(cancelled)} batches: {', '.join(cancelled) or 'none was open'}; recorded in the "
              "ledgers. Running without --cancel submits their lines without a result again.")
        return 0
    save_config(args, endpoints)
    try:
        totals = processor.run()
    except KeyboardInterrupt:
        live = [a.batch_id for a in processor.live_attempts() if a.batch_id]
        again = " ".join(sys.argv[1:]) if sys.argv[1:] else "..."
        print(f"\ninterrupted: {len(live)} batches keep running on the service (already paid for): "
              f"{', '.join(live[:5])}{' ...' if len(live) > 5 else ''}\n"
              f"  resume polling them:  python batch_processor.py {again}\n"
              f"  or cancel them:       python batch_processor.py {again} --cancel", file=sys.stderr)
        return 130
    print(f"done: {totals['files_done']} files; lines ok {totals['ok']}, refused {totals['refused']} "
          f"(content filter), failed {totals['failed']}, gave up {totals['gave_up']}")
    if totals["files_elsewhere"]:
        print(f"{totals['files_elsewhere']} files are driven by another batch_processor session")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_dir is None:
        if not args.split:
            parser.error("give --batch-dir, or --split to use batch_files/SPLIT")
        args.batch_dir = BATCH_ROOT / args.split
    if args.check_interval <= 0 or args.stale_after <= 0:
        parser.error("--check-interval and --stale-after must be positive")
    if args.status:
        setup_logging(args.verbose)
        print(status_table(args.batch_dir))
        return 0
    return run_main(lambda: run(args), args.verbose, fatal=(PackError, FileNotFoundError))


if __name__ == "__main__":
    sys.exit(main())
