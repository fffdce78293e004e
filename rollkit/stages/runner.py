"""The loop every stage shares, and running one stage (`execute`, `dry_run`): stream inputs, skip what is done, bound the work in flight, write
each result as soon as it is finished, show progress, and end with a summary.

A stage supplies one coroutine, `process(item, entry_id) -> Outcome`; everything about resuming,
errors, duplicates and counting lives here once.

A stage that writes several records per input (rollout.py: one per rollout) gives `units`, which
names the sub-ids of an entry (`<entry_id>:r0`, ...), and `id_field`, the output field they key.
Each unit is then processed, written and resumed on its own: `process(item, unit_id)`.

A stage that writes one record per input but keys it by more than the entry (prm-score: the rollouts
of one entry are separate records) gives `record_key(record, entry_id)`, the key of that record. The
entry id is worked out once, here, in the id version the output is keyed by.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rollkit.content.images import ImageError, image_size
from rollkit.content.inputs import (
    ENTRY_ID_VERSION,
    InputItem,
    RecordError,
    check_not_empty,
    count_inputs,
    id_version_for,
    image_root_field,
    record_id,
)
from rollkit.content.tokens import completion_allowance, count_messages
from rollkit.net.client import (
    DEFAULT_CUT_OFF_RESENDS,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    ChatClient,
    FatalEndpointError,
    OutageError,
    RequestStats,
)
from rollkit.net.endpoints import EndpointPool
from rollkit.net.pricing import model_price
from rollkit.stages.summary import check_useful, print_summary, share_429
from rollkit.store.atomic import write_json
from rollkit.store.journal import RequestJournal
from rollkit.store.result_log import DigestTable, ResultLog, error_log_for, id_digest

log = logging.getLogger("rollkit")
YIELD_EVERY = 1000


@dataclass
class Outcome:
    """What processing one record produced: a record to write, or a reason it failed for good."""

    record: dict | None = None
    error_reason: str | None = None
    message: str | None = None
    incomplete: bool = False  # written, but some samples failed: `--retry-failed` redoes it
    truncated: bool = False  # the answer stopped at the token budget (written as it stands, or left out)


@dataclass
class StageCounts:
    seen: int = 0
    written: int = 0
    incomplete: int = 0
    already_done: int = 0
    duplicates: int = 0
    bad_input: int = 0
    failed: int = 0
    truncated: int = 0  # records whose answer stopped at the token budget, written or left out
    checked: int = 0  # written records whose answer was checked against the reference (is_correct set)
    right: int = 0  # of those, the ones that reached it
    failures: Counter = field(default_factory=Counter)


Process = Callable[[InputItem, str], Awaitable[Outcome]]
Units = Callable[[str], list[str]]
RecordKey = Callable[[dict, str], str]  # (record, its entry id) -> the key it is written and resumed under


def entry_key(record: dict, entry_id: str) -> str:
    """The usual key of a record: its entry id."""
    return entry_id


class StageRunner:
    """Runs `process` over a stream of inputs into `<output>` and `<output>.errors.jsonl`."""

    def __init__(self, name: str, output: str | Path, *, concurrency: int, retry_failed: bool = False,
                 request_stats: Callable[[], RequestStats] | None = None, id_field: str = "entry_id",
                 units: Units | None = None, endpoints: Callable[[], dict] | None = None,
                 record_key: RecordKey = entry_key, id_version: int = 0) -> None:
        self.name = name
        self.record_key = record_key
        self.endpoints = endpoints or dict
        self.id_version = id_version or ENTRY_ID_VERSION  # execute: the output's own (id_version_for)
        self.output = ResultLog(output, id_field=id_field)
        self.units = units
        self.errors = error_log_for(output)
        self.concurrency = max(1, concurrency)
        self.retry_failed = retry_failed
        self.request_stats = request_stats or RequestStats
        self.counts = StageCounts()
        self._this_run = DigestTable()  # ids taken this run, as compact digests: memory stays flat
        self._started = time.monotonic()

    def open(self) -> StageRunner:
        self.output.open()
        self.errors.open()
        if self.retry_failed:
            self._forget_failures()
        return self

    def close(self) -> None:
        self.output.close()
        self.errors.close()

    def _forget_failures(self) -> None:
        incomplete = [r[self.output.id_field] for r in self.output.iter_records() if r.get("incomplete")]
        failed = [r["error_key"] for r in self.errors.iter_records()]
        removed = self.output.drop(incomplete) + self.errors.drop(failed)
        log.info("--retry-failed: %d incomplete or failed records will be redone", removed)

    async def run(self, items: Iterable[InputItem], process: Process, total: int | None = None) -> StageCounts:
        """`total`: the number of input records, when known, for the bar's share and time left. The bar
        counts records taken from the input; work in flight trails it by at most `concurrency`."""
        pending: set[asyncio.Task] = set()
        with tqdm(desc=self.name, unit="rec", total=total, file=sys.stderr, mininterval=0.5,
                  dynamic_ncols=True) as bar:
            self._bar = bar
            try:
                for index, item in enumerate(items):
                    if index % YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # skipping done records must not starve replies in flight
                    eid, units = self._admit(item)
                    for unit in units:
                        while len(pending) >= self.concurrency:
                            pending = await self._collect(pending)
                        pending.add(asyncio.create_task(self._run_one(process, item, eid, unit)))
                while pending:
                    pending = await self._collect(pending)
            finally:
                for task in pending:
                    task.cancel()
        return self.counts

    def _admit(self, item: InputItem) -> tuple[str | None, list[str]]:
        """The entry's id and the units still to do; none when the item is bad, done, or a duplicate."""
        self.counts.seen += 1
        self._bar.update(1)
        if item.error:
            self.counts.bad_input += 1
            log.warning("%s", item.error)
            self.errors.add(entry_id=None, source=item.source, line=item.line, stage=self.name,
                            reason="bad_input", message=item.error)
            return None, []
        eid = record_id(item.record, self.id_version)
        key = self.record_key(item.record, eid)
        digest = id_digest(key)
        if digest in self._this_run:
            self.counts.duplicates += 1
            return eid, []
        self._this_run.add(digest)
        units = self._todo(key)
        if not units:
            self.counts.already_done += 1
        return eid, units

    def _todo(self, key: str) -> list[str]:
        """The units of a record not yet written or failed (the record itself when there are no units)."""
        units = self.units(key) if self.units else [key]
        return [unit for unit in units if unit not in self.output and unit not in self.errors]

    async def _collect(self, pending: set[asyncio.Task]) -> set[asyncio.Task]:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a fatal error (bad credentials) stops the run here
        return pending

    async def _run_one(self, process: Process, item: InputItem, eid: str, unit: str) -> None:
        try:
            outcome = await process(item, unit)
        except (FatalEndpointError, OutageError):
            raise  # the run stops; this record is neither written nor failed, so a rerun does it
        except ImageError as exc:
            outcome = Outcome(error_reason="bad_image", message=f"{item.location}: {exc}")
        except Exception as exc:  # a bug must not sink a days-long run; it is recorded with its type
            log.exception("%s: unexpected error", item.location)
            outcome = Outcome(error_reason="internal_error", message=f"{type(exc).__name__}: {exc}")
        self._write(item, eid, unit, outcome)

    def _write(self, item: InputItem, eid: str, unit: str, outcome: Outcome) -> None:
        if outcome.record is not None:
            self.output.append({**item.record, **image_root_field(item.record, item.source), **outcome.record,
                                "entry_id": eid, self.output.id_field: unit, "incomplete": outcome.incomplete})
            self.counts.written += 1
            self.counts.incomplete += outcome.incomplete
            correct = outcome.record.get("is_correct")
            self.counts.checked += correct is not None
            self.counts.right += correct is True
        else:
            if outcome.error_reason == "bad_image":
                log.warning("%s", outcome.message)
            # A unit's failure is keyed by the unit's id, so its siblings still run.
            unit_field = {} if unit == eid else {self.output.id_field: unit}
            self.errors.add(entry_id=eid, source=item.source, line=item.line, stage=self.name, key=unit,
                            reason=outcome.error_reason, message=outcome.message, **unit_field)
            self.counts.failed += 1
            self.counts.failures[outcome.error_reason] += 1
        self.counts.truncated += outcome.truncated
        self._show_progress()

    def _show_progress(self) -> None:
        stats = self.request_stats()
        minutes = max(1e-9, (time.monotonic() - self._started) / 60)
        self._bar.set_postfix(done=self.counts.written, failed=self.counts.failed,
                              rpm=round(stats.sent / minutes), **{"429": f"{share_429(stats):.1%}"},
                              tpm=round((stats.prompt_tokens + stats.completion_tokens) / minutes),
                              refresh=False)

    def summary(self) -> dict:
        stats = self.request_stats()
        elapsed = time.monotonic() - self._started
        counts = asdict(self.counts)
        counts["failures"] = dict(self.counts.failures)
        return {"stage": self.name, "records": counts,
                "requests": {**asdict(stats), "share_429": round(share_429(stats), 4)},
                "endpoints": self.endpoints(),
                "elapsed_seconds": round(elapsed, 2), "output": str(self.output.path),
                "output_records": len(self.output),
                "errors": str(self.errors.path)}


# The record format of stage outputs; bumped, with a note in the README, whenever a field changes.
OUTPUT_SCHEMA_VERSION = 2

def merged_stats(clients: list[ChatClient]) -> RequestStats:
    total = RequestStats()
    for client in clients:
        for item in fields(RequestStats):
            setattr(total, item.name, getattr(total, item.name) + getattr(client.stats, item.name))
    return total


def saved_flag(value: Any) -> Any:
    """A flag as the saved config holds it: what was typed for a flag parsed into an object (a
    regex's pattern, StepTokens' `+,-`), so the file reads like the command line."""
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    if isinstance(value, re.Pattern):
        return value.pattern
    return str(value)


@dataclass(frozen=True)
class StageConfig:
    """What the engine needs of a stage's flags, resolved once from the command line; `flags` is
    every resolved flag, saved beside the output (keys are never flags, so none can leak there)."""

    output: str
    inputs: list[str]
    concurrency: int = 16
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    cut_off_resends: int = DEFAULT_CUT_OFF_RESENDS
    max_attempts: int = 5
    backoff: float = 1.0
    max_outage: float = 600.0
    retry_failed: bool = False
    start: int | None = None  # 0-based first record, end excluded (cli turns the seed's 1-based form)
    end: int | None = None
    journal: str | None = None  # the seeds' --cache_file; default <output>.journal.jsonl
    flags: dict = field(default_factory=dict)
    reasoning_effort: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> StageConfig:
        return cls(output=args.output, inputs=args.input, concurrency=args.concurrency,
                   request_timeout=args.request_timeout, max_attempts=args.max_attempts, backoff=args.backoff,
                   max_outage=args.max_outage, retry_failed=args.retry_failed,
                   cut_off_resends=args.cut_off_resends,
                   start=getattr(args, "start", None), end=getattr(args, "end", None),
                   journal=getattr(args, "cache_file", None),
                   flags={name: saved_flag(value) for name, value in vars(args).items()},
                   reasoning_effort=getattr(args, "reasoning_effort", None))

    @property
    def journal_path(self) -> Path:
        return Path(self.journal or f"{self.output}.journal.jsonl")


async def execute(name: str, config: StageConfig, items: Iterable[InputItem],
                  pools: dict[str, EndpointPool], make_process: Callable[[dict[str, ChatClient]], Process],
                  *, id_field: str = "entry_id", units: Units | None = None,
                  record_key: RecordKey = entry_key) -> dict:
    """Run one stage over `items` into `config.output`; returns its summary (also printed and saved).

    `id_field`, `units` and `record_key` let a stage key its records by more than the entry (see StageRunner)."""
    c, output = config, config.output
    check_not_empty(c.inputs, start=c.start, end=c.end)
    async with AsyncExitStack() as stack:
        journal = stack.enter_context(RequestJournal(c.journal_path))
        slots = asyncio.Semaphore(c.concurrency)  # one bound for every role: a kill costs at most this
        clients = {role: await stack.enter_async_context(ChatClient(
            pool, journal, concurrency=c.concurrency, timeout=c.request_timeout, max_attempts=c.max_attempts,
            backoff=c.backoff, max_outage=c.max_outage, slots=slots, redo_unusable=c.retry_failed,
            cut_off_resends=c.cut_off_resends, reasoning_effort=c.reasoning_effort))
            for role, pool in pools.items()}
        runner = StageRunner(name, output, concurrency=c.concurrency, retry_failed=c.retry_failed,
                             request_stats=lambda: merged_stats(list(clients.values())), id_field=id_field,
                             units=units, endpoints=lambda: {role: pool.describe() for role, pool in pools.items()},
                             record_key=record_key,
                             id_version=id_version_for(output))  # before this run's config: resumes keep old ids
        runner.open()
        stack.callback(runner.close)
        write_json(f"{output}.config.json", {"stage": name, "schema_version": OUTPUT_SCHEMA_VERSION,
                                             "entry_id_version": runner.id_version, **c.flags})
        await runner.run(items, make_process(clients), count_inputs(c.inputs, start=c.start, end=c.end))
        summary = runner.summary()
    write_json(f"{output}.summary.json", summary)
    print_summary(summary)
    check_useful(summary)
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
        except (ImageError, RecordError) as exc:  # a real run writes it to the errors file and never sends it
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
