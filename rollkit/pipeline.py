"""The part of every script after flag parsing: open the journal and clients, run the stage, save
the resolved configuration and the summary beside the output. Also the dry run."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import fields
from pathlib import Path

from .client import ChatClient, RequestStats
from .endpoints import EndpointPool
from .images import ImageError, image_size
from .journal import RequestJournal
from .records import ENTRY_ID_VERSION, InputItem, check_not_empty, count_inputs, record_id
from .stage import Process, StageRunner, Units, print_summary, save_json
from .tokens import completion_allowance, count_messages

# The record format of stage outputs; bumped, with a note in the README, whenever a field changes.
OUTPUT_SCHEMA_VERSION = 2

# Dollars per 1M tokens (prompt, completion), list prices; override with --price-in/--price-out.
PRICES = {
    "gpt-4.1": (2.00, 8.00), "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00), "gpt-4o-mini": (0.15, 0.60), "o4-mini": (1.10, 4.40), "o3": (2.00, 8.00),
}


def model_price(model: str) -> tuple[float | None, float | None]:
    """List price of the longest known name the model or deployment starts with (`gpt-4.1-nano-3`)."""
    names = [name for name in PRICES if model.startswith(name)]
    return PRICES[max(names, key=len)] if names else (None, None)


def merged_stats(clients: list[ChatClient]) -> RequestStats:
    total = RequestStats()
    for client in clients:
        for item in fields(RequestStats):
            setattr(total, item.name, getattr(total, item.name) + getattr(client.stats, item.name))
    return total


def journal_path(args: argparse.Namespace) -> Path:
    """The seeds' `--cache_file` when given, else `<output>.journal.jsonl`."""
    return Path(getattr(args, "cache_file", None) or f"{args.output}.journal.jsonl")


async def execute(name: str, args: argparse.Namespace, items: Iterable[InputItem],
                  pools: dict[str, EndpointPool], make_process: Callable[[dict[str, ChatClient]], Process],
                  *, id_field: str = "entry_id", units: Units | None = None) -> dict:
    """Run one stage over `items` into `args.output`; returns its summary (also printed and saved).

    `id_field` and `units` let a stage write several records per input (see StageRunner)."""
    output = args.output
    check_not_empty(args.input, start=getattr(args, "start", None), end=getattr(args, "end", None))
    async with AsyncExitStack() as stack:
        journal = stack.enter_context(RequestJournal(journal_path(args)))
        slots = asyncio.Semaphore(args.concurrency)  # one bound for every role: a kill costs at most this
        clients = {role: await stack.enter_async_context(ChatClient(
            pool, journal, concurrency=args.concurrency, timeout=args.request_timeout,
            max_attempts=args.max_attempts, backoff=args.backoff, max_outage=args.max_outage, slots=slots,
            redo_unusable=args.retry_failed)) for role, pool in pools.items()}
        runner = StageRunner(name, output, concurrency=args.concurrency, retry_failed=args.retry_failed,
                             request_stats=lambda: merged_stats(list(clients.values())), id_field=id_field,
                             units=units, endpoints=lambda: {role: pool.describe() for role, pool in pools.items()})
        runner.open()
        stack.callback(runner.close)
        save_json(f"{output}.config.json", {"stage": name, "schema_version": OUTPUT_SCHEMA_VERSION,
                                            "entry_id_version": ENTRY_ID_VERSION, **vars(args)})
        total = count_inputs(args.input, start=getattr(args, "start", None), end=getattr(args, "end", None))
        await runner.run(items, make_process(clients), total)
        summary = runner.summary()
    save_json(f"{output}.summary.json", summary)
    print_summary(summary)
    return summary


def dry_run(items: Iterable[InputItem], bodies_for: Callable[[InputItem, str], list[dict]], model: str,
            price_in: float | None, price_out: float | None, stream=sys.stdout) -> None:
    """Count what a run would send and cost, without calling anything."""
    records = requests = prompt = completion = bad = 0
    for item in items:
        if item.error:
            bad += 1
            continue
        try:
            bodies = bodies_for(item, record_id(item.record))
        except ImageError as exc:  # a real run writes it to the errors file and never sends it
            bad += 1
            print(f"{item.where}: {exc}", file=sys.stderr)
            continue
        records += 1
        for body in bodies:
            requests += 1
            prompt += count_messages(body["messages"], body.get("model"), image_size)
            completion += completion_allowance(body)
    known_in, known_out = model_price(model)
    price_in, price_out = price_in if price_in is not None else known_in, price_out if price_out is not None \
        else known_out
    cost = "unknown (give --price-in and --price-out)" if price_in is None or price_out is None else \
        f"${(prompt * price_in + completion * price_out) / 1e6:,.2f} at most"
    print(f"dry run: {records} records ({bad} bad), {requests} requests\n"
          f"  prompt tokens      {prompt:,} (estimated)\n"
          f"  completion tokens  {completion:,} at most (max tokens per request)\n"
          f"  cost               {cost}", file=stream)
