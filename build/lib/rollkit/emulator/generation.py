"""How long answers take, as on a real model server: a generation speed and a bounded batch.

- `tokens_per_second`: the speed of one sequence (one choice of a request) generating alone; an
  answer of T tokens takes T / speed seconds. The choices of a request with `n` are generated side
  by side, as vLLM does.
- `server_tokens_per_second`: the whole server's throughput, shared by every sequence generating at
  once (a real server's batch): with k sequences each gets min(speed, throughput / k).
- `max_num_seqs`: at most this many sequences generate at once; the rest wait their turn, in order
  of arrival, as vLLM's scheduler queues them (it never answers 429).

A sequence whose client hung up stops at once and frees its seat (vLLM aborts it too).
`GET /_emulator/stats` shows `generation`: sequences generating and waiting now, the most that ever
generated at once, and the tokens generated (for benchmarks: the server's own time for the work).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GenerationSettings:
    tokens_per_second: float = 0.0  # per sequence; 0: no limit
    server_tokens_per_second: float = 0.0  # shared by all sequences; 0: no limit
    max_num_seqs: int = 0  # sequences generating at once; 0: no limit (and no queue)

    @property
    def active(self) -> bool:
        return bool(self.tokens_per_second or self.server_tokens_per_second or self.max_num_seqs)


@dataclass(eq=False)
class _Sequence:
    remaining: float
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Generation:
    """Processor sharing over the sequences that hold a seat; a background task moves them on."""

    def __init__(self, settings: GenerationSettings) -> None:
        self.settings = settings
        self._seats = asyncio.Semaphore(settings.max_num_seqs) if settings.max_num_seqs else None
        self._running: set[_Sequence] = set()
        self._changed = asyncio.Event()
        self._stepper: asyncio.Task | None = None
        self._stamp = time.monotonic()
        self.waiting = 0  # a gauge, like generating: not zeroed by a reset of the counters
        self.reset()

    def reset(self) -> None:
        self.peak_generating = len(self._running)
        self.tokens = 0
        self.sequences = 0

    async def generate(self, token_counts: list[int]) -> None:
        """Wait until every choice of one answer has been generated."""
        if self.settings.active and token_counts:
            await asyncio.gather(*(self._one(count) for count in token_counts))

    async def _one(self, tokens: int) -> None:
        self.waiting += 1
        try:
            if self._seats is not None:
                await self._seats.acquire()
        finally:
            self.waiting -= 1
        try:
            await self._run(tokens)
        finally:
            if self._seats is not None:
                self._seats.release()

    async def _run(self, tokens: int) -> None:
        self._advance()
        sequence = _Sequence(float(tokens))
        self._running.add(sequence)
        self.peak_generating = max(self.peak_generating, len(self._running))
        self._wake()
        try:
            await sequence.done
        finally:
            self._advance()
            self._running.discard(sequence)
            self._wake()
        self.tokens += tokens
        self.sequences += 1

    def _rate(self) -> float:
        """Tokens per second each running sequence gets now (inf: no speed set)."""
        rates = [self.settings.tokens_per_second or float("inf")]
        if self.settings.server_tokens_per_second and self._running:
            rates.append(self.settings.server_tokens_per_second / len(self._running))
        return min(rates)

    def _advance(self) -> None:
        """Move every running sequence on by the time since the last step; finish those done."""
        now = time.monotonic()
        rate = self._rate()
        progress = float("inf") if rate == float("inf") else (now - self._stamp) * rate
        self._stamp = now
        for sequence in self._running:
            sequence.remaining -= progress
            if sequence.remaining <= 1e-6 and not sequence.done.done():
                sequence.done.set_result(None)

    def _wake(self) -> None:
        self._changed.set()
        if self._stepper is None or self._stepper.done():
            self._stepper = asyncio.get_running_loop().create_task(self._step())

    async def _step(self) -> None:
        while self._running:
            self._changed.clear()
            pending = [s.remaining for s in self._running if not s.done.done()]
            if not pending:
                await self._changed.wait()
                continue
            rate = self._rate()
            delay = 0.0 if rate == float("inf") else max(0.0, min(pending)) / rate
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=delay)
            except TimeoutError:
                pass
            self._advance()

    def as_json(self) -> dict[str, Any]:
        if not self.settings.active:
            return {}
        return {"generating": len(self._running), "waiting": self.waiting, "peak_generating": self.peak_generating,
                "sequences": self.sequences, "tokens": self.tokens}


def add_generation_flags(parser: Any) -> None:
    group = parser.add_argument_group("generation speed and queueing (a local model server)")
    group.add_argument("--tokens-per-second", type=float, default=0.0,
                       help="speed of one sequence: an answer of T tokens takes T/speed s (default 0: instant)")
    group.add_argument("--server-tokens-per-second", type=float, default=0.0,
                       help="throughput shared by all sequences generating at once (default 0: no limit)")
    group.add_argument("--max-num-seqs", type=int, default=0,
                       help="at most N sequences generate at once, the rest queue, as vLLM does: no 429s "
                            "and no rate headers (not with --rpm/--tpm; default 0: no queue)")


def generation_from_args(parser: Any, args: Any) -> GenerationSettings:
    """The settings, or a usage error; a queueing server meters nothing, so it sends no rate headers."""
    if min(args.tokens_per_second, args.server_tokens_per_second, args.max_num_seqs) < 0:
        parser.error("--tokens-per-second, --server-tokens-per-second and --max-num-seqs must not be negative")
    if args.max_num_seqs and (args.rpm or args.tpm):
        parser.error("--max-num-seqs queues requests instead of refusing them: give no --rpm/--tpm")
    if args.max_num_seqs:
        args.headers = "none"
    return GenerationSettings(args.tokens_per_second, args.server_tokens_per_second, args.max_num_seqs)
