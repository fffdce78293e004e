"""Drive packed files through the Batch API until every line has a final result.

Each check: for every file this process drives, resume what the ledger says is under way (upload,
create, poll, cancel a stalled batch, download), then plan the next attempt of files that still
have lines without a final result; update the progress bar; sleep `--check-interval`. The run
ends when every file is done.

Never twice: each call that costs money or creates something is preceded by an intent in the
file's ledger and followed by its result. A restart that finds an intent without its result asks
the service (files.list by upload name and size, batches.list by input file and the attempt named
in the batch metadata) before calling again. Lines are resubmitted only when they have no final
result: a good reply, a content-filter refusal (recorded with its reason) or another permanent
failure.
"""

from __future__ import annotations

import logging
import resource
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from openai.types import Batch
from tqdm import tqdm

from rollkit.batch.limits import LEDGER_DIR, RESULTS_DIR
from rollkit.batch.pack import load_manifest
from rollkit.batch.results import iter_results
from rollkit.batch.schedule import Scheduler, Slot, TooLarge
from rollkit.batch.service import QUOTA_CODE, CallRefused, QuotaRefused, TransientCallError
from rollkit.batch.submission import file_tokens, final_ids, packed_lines, submission_for
from rollkit.content.inputs import one_based_range
from rollkit.net.client import OutageError
from rollkit.net.endpoints import EndpointConfigError
from rollkit.store.batch_ledger import TERMINAL, Attempt, FileLedger, FileState, read_state
from rollkit.store.result_log import LogLockedError

log = logging.getLogger("rollkit")


# Batches run for hours and are checked every few minutes: an hour with no answer is an outage.
DEFAULT_BATCH_MAX_OUTAGE_SECONDS = 3600.0


@dataclass
class ProcessorSettings:
    batch_dir: Path
    check_interval: float = 5.0  # minutes
    stale_after: float = 360.0  # minutes without progress before a batch is cancelled and resubmitted
    max_attempts: int = 5  # tries per file that ran (quota refusals do not count)
    start: int | None = None  # the seed's batch numbers: from 1, both ends included
    end: int | None = None
    progress: bool = True
    max_outage: float = DEFAULT_BATCH_MAX_OUTAGE_SECONDS  # seconds without an answer from any endpoint asked


def ledger_path(batch_dir: Path, name: str) -> Path:
    return batch_dir / LEDGER_DIR / f"{Path(name).stem}.jsonl"


def result_paths(batch_dir: Path, attempt: Attempt) -> list[Path]:
    return [batch_dir / RESULTS_DIR / f"{attempt.batch_id}.{kind}.jsonl" for kind in ("output", "error")]


def _existing(paths: list[Path]) -> list[Path]:
    return [p for p in paths if p.exists()]


def _raise_fd_limit() -> None:
    # two descriptors per driven file (ledger and its lock): allow thousands of files
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def batch_range(manifest: dict, start: int | None, end: int | None, batch_dir: Path) -> slice:
    """The manifest's files of batch numbers `start..end` (from 1, both included); EmptyInput, naming
    the first and last file, when the range selects none."""
    files = manifest["files"]
    what = f"{batch_dir}: no batch file" if not files else f"{batch_dir} ({files[0]['name']} ... {files[-1]['name']})"
    return one_based_range(start, end, len(files), what, ("--start-index", "--end-index"))


class Processor:
    def __init__(self, settings: ProcessorSettings, slots: list[Slot]):
        self.s = settings
        self.scheduler = Scheduler(slots)
        self.active: dict[str, FileLedger] = {}
        self.finished: dict[str, dict] = {}  # file -> its file_done event
        self.elsewhere: list[str] = []  # files another process drives
        self.final: dict[str, dict[str, str]] = {}  # file -> custom_id -> final status
        self.entries: dict[str, dict] = {}

    # -- set-up -----------------------------------------------------------------------------------

    def load(self) -> None:
        """Read the manifest and take the files of the range that are not done yet."""
        self.manifest = load_manifest(self.s.batch_dir)
        if self.manifest is None:
            raise FileNotFoundError(f"{self.s.batch_dir}: no manifest.json; run `merge_and_map_batch.py pack` first")
        _raise_fd_limit()
        for entry in self.manifest["files"][batch_range(self.manifest, self.s.start, self.s.end, self.s.batch_dir)]:
            name = entry["name"]
            if name in self.entries:
                continue
            self.entries[name] = entry
            state = read_state(ledger_path(self.s.batch_dir, name), name)
            if state.done is not None:
                self.finished[name] = state.done
                continue
            ledger = FileLedger(ledger_path(self.s.batch_dir, name), name)
            try:
                ledger.open()
            except LogLockedError as exc:
                log.warning("%s: skipped, %s", name, exc)
                self.elsewhere.append(name)
                continue
            if ledger.state.done is not None:  # another session finished it a moment ago
                self.finished[name] = ledger.state.done
                ledger.close()
            else:
                self.active[name] = ledger

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> Counter:
        self.load()
        total = sum(self.entries[n]["lines"] for n in self.entries if n not in self.elsewhere)
        bar = tqdm(total=total, unit="line", desc="batch lines", disable=not self.s.progress, dynamic_ncols=True)
        try:
            while True:
                self.tick()
                bar.n = self.lines_done()
                bar.refresh()
                if not self.active:
                    break
                time.sleep(self.s.check_interval * 60)
        finally:
            bar.close()
            for ledger in self.active.values():
                ledger.close()
        return self.summary()

    def tick(self) -> None:
        for name in list(self.active):
            try:
                self.advance(self.active[name])
            except TransientCallError as exc:
                log.warning("%s; trying again at the next check", exc)
            except CallRefused as exc:  # e.g. a batch the service no longer knows: say so, keep going
                log.error("%s", exc)
        self.check_outage()

    def check_outage(self) -> None:
        """Stop (exit 3) once every endpoint asked in the last --max-outage seconds has failed for
        that long. The ledgers hold everything; a plain rerun picks the batches up where they are."""
        now, limit = time.monotonic(), self.s.max_outage
        asked = [slot.service for slot in self.scheduler.slots if slot.service.failing_since is not None
                 or (slot.service.last_answer is not None and now - slot.service.last_answer < limit)]
        if asked and all(service.down_for(now) >= limit for service in asked):
            names = ", ".join(service.endpoint.where() for service in asked)
            raise OutageError(f"no answer from {names} for {limit:.0f} s; the ledgers keep every batch, "
                              "run the same command again to resume")

    def advance(self, ledger: FileLedger) -> None:
        attempt = ledger.state.current
        if attempt is not None and attempt.live:
            self.drive(ledger, attempt)
        attempt = ledger.state.current
        if attempt is None or not attempt.live:
            self.plan(ledger)

    def live_attempts(self) -> list[Attempt]:
        return [a for ledger in self.active.values() if (a := ledger.state.current) is not None and a.live]

    # -- one attempt ------------------------------------------------------------------------------

    def drive(self, ledger: FileLedger, a: Attempt) -> None:
        slot = self.scheduler.by_name.get(a.endpoint)
        if slot is None:
            raise EndpointConfigError(f"{ledger.name}: attempt {a.id} runs on endpoint {a.endpoint!r}, which is "
                                      "not configured now; add it back to --endpoints to resume it")
        if a.input_file_id is None:
            self.upload(ledger, a, slot)
        if a.batch_id is None:
            self.create(ledger, a, slot)
            if not a.live:
                return
        if a.status not in TERMINAL:
            self.poll(ledger, a, slot)
        if a.status in TERMINAL and a.downloaded is None:
            self.download(ledger, a, slot)

    def upload(self, ledger: FileLedger, a: Attempt, slot: Slot) -> None:
        reuse = ledger.state.uploads.get((a.endpoint, a.sha256))  # the same lines went there before
        if reuse is not None:
            ledger.record("uploaded", attempt=a.id, file_id=reuse, reused=True)
            return
        if a.upload_pending:  # died during the upload: did it get through?
            found = slot.service.find_upload(a.filename, a.bytes)
            if found is not None:
                ledger.record("uploaded", attempt=a.id, file_id=found.id, reconciled=True)
                return
        ledger.record("upload_intent", attempt=a.id)
        uploaded = slot.service.upload(self.s.batch_dir / a.path, a.filename)
        ledger.record("uploaded", attempt=a.id, file_id=uploaded.id)

    def create(self, ledger: FileLedger, a: Attempt, slot: Slot) -> None:
        if a.create_pending:
            known = {x.batch_id for x in ledger.state.attempts if x.batch_id}
            found = slot.service.find_batch(a.input_file_id, a.id, known)
            if found is not None:
                ledger.record("created", attempt=a.id, batch_id=found.id, status="validating", reconciled=True)
                self.record_status(ledger, a, found)  # it may be long finished: keep its file ids
                return
        ledger.record("create_intent", attempt=a.id, input_file_id=a.input_file_id)
        try:
            batch = slot.service.create(a.input_file_id, a.id)
        except QuotaRefused as exc:
            rest = slot.refused()
            ledger.record("refused", attempt=a.id, reason=QUOTA_CODE, message=str(exc))
            log.info("%s refused %s (enqueued-token quota); it rests %.0f s", slot.name, ledger.name, rest)
            return
        except CallRefused as exc:
            # 404: the uploaded file is gone (expired, deleted): the next attempt uploads it again
            reason = "input_file_not_found" if exc.status == 404 else exc.code or "refused"
            ledger.record("refused", attempt=a.id, reason=reason, message=str(exc))
            log.warning("%s", exc)
            return
        slot.accepted()
        ledger.record("created", attempt=a.id, batch_id=batch.id, status=batch.status)

    def poll(self, ledger: FileLedger, a: Attempt, slot: Slot) -> None:
        try:
            batch = slot.service.retrieve(a.batch_id)
        except CallRefused as exc:
            if exc.status != 404:
                raise
            # the service no longer knows it (deleted, or another account): asking again at every
            # check would never end, so the attempt ends here and its lines go again
            log.error("%s: %s; its lines without a result are submitted again", ledger.name, exc)
            ledger.record("status", attempt=a.id, status="failed", completed=a.completed, failed=a.failed, total=0,
                          output_file_id=None, error_file_id=None, errors=["batch_not_found"])
            return
        if self.record_status(ledger, a, batch):
            return
        stalled = time.time() - a.changed_at > self.s.stale_after * 60
        if stalled and a.status != "cancelling" and a.cancel_reason is None:
            ledger.record("cancel", attempt=a.id, reason="stalled")
            log.warning("%s: batch %s made no progress for %.1f min; cancelling it to resubmit its lines",
                        ledger.name, a.batch_id, self.s.stale_after)
            slot.service.cancel(a.batch_id)

    def record_status(self, ledger: FileLedger, a: Attempt, batch: Batch) -> bool:
        """Record the batch's status, counts and file ids when any of them changed; True if recorded."""
        counts = batch.request_counts
        done, failed = (counts.completed, counts.failed) if counts else (0, 0)
        if (batch.status, done, failed, batch.output_file_id, batch.error_file_id) == \
                (a.status, a.completed, a.failed, a.output_file_id, a.error_file_id):
            return False
        errors = [e.code or "unknown" for e in (batch.errors.data or [])] if batch.errors else []
        ledger.record("status", attempt=a.id, status=batch.status, completed=done, failed=failed,
                      total=counts.total if counts else 0, output_file_id=batch.output_file_id,
                      error_file_id=batch.error_file_id, errors=errors)
        return True

    def download(self, ledger: FileLedger, a: Attempt, slot: Slot) -> None:
        paths = result_paths(self.s.batch_dir, a)
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        for file_id, dest in ((a.output_file_id, paths[0]), (a.error_file_id, paths[1])):
            if file_id and not dest.exists():
                try:
                    slot.service.download(file_id, dest)
                except CallRefused as exc:
                    if exc.status != 404:
                        raise
                    log.error("%s: %s; lines it held are submitted again", ledger.name, exc)
        counts = Counter(r.status for r in iter_results(_existing(paths)))
        quota = a.status == "failed" and QUOTA_CODE in a.errors
        if quota:
            slot.refused()
        elif a.errors:
            log.warning("%s: batch %s %s: %s", ledger.name, a.batch_id, a.status, ", ".join(a.errors))
        ledger.record("downloaded", attempt=a.id, counts=dict(counts), quota_refusal=quota)
        known = self.final.get(ledger.name)
        # After a restart the file's finals are built by final_of from every download, this one
        # included; starting them from this download alone would send earlier answers again.
        if known is not None:
            known.update(final_ids(_existing(paths)))

    # -- the next attempt of a file ---------------------------------------------------------------

    def final_of(self, state: FileState) -> dict[str, str]:
        if state.name not in self.final:  # after a restart: from every downloaded result of the file
            paths = [p for a in state.attempts if a.downloaded is not None for p in result_paths(self.s.batch_dir, a)]
            self.final[state.name] = final_ids(_existing(paths))
        return self.final[state.name]

    def plan(self, ledger: FileLedger) -> None:
        state, entry = ledger.state, self.entries[ledger.name]
        final = self.final_of(state)
        pending = {cid for cid, _ in packed_lines(self.s.batch_dir / entry["name"]) if cid not in final} \
            if final else None
        tries = sum(1 for a in state.attempts if not a.live and a.refused != QUOTA_CODE)
        if pending == set() or tries >= self.s.max_attempts:
            self.finish(ledger, final, gave_up=len(pending) if pending is not None else entry["lines"])
            return
        per_line = None if pending is None else file_tokens(self.s.batch_dir, entry["name"])
        tokens = entry["tokens"] if per_line is None else sum(per_line.get(cid, 0) for cid in pending)
        try:
            slot = self.scheduler.choose(tokens, self.live_attempts())
        except TooLarge as exc:
            log.error("%s: %s", ledger.name, exc)
            self.finish(ledger, final, gave_up=entry["lines"] - len(final), reason="over_quota")
            return
        if slot is None:
            return  # every endpoint is full or resting: try again at the next check
        sub = submission_for(self.s.batch_dir, entry, self.manifest, pending, per_line, slot.service)
        number = len(state.attempts) + 1
        ledger.record("submit", attempt=f"{ledger.name}#{number}", number=number, endpoint=slot.name,
                      path=str(sub.path.relative_to(self.s.batch_dir)), sha256=sub.sha256,
                      filename=sub.upload_name(Path(entry["name"]).stem), lines=sub.lines, tokens=sub.tokens,
                      bytes=sub.bytes)
        self.drive(ledger, state.current)

    def finish(self, ledger: FileLedger, final: dict[str, str], gave_up: int, reason: str | None = None) -> None:
        counts = Counter(final.values())
        event = ledger.record("file_done", ok=counts["ok"], refused=counts["refused"], failed=counts["failed"],
                              gave_up=gave_up, reason=reason or ("max_attempts" if gave_up else None))
        if gave_up:
            log.warning("%s: %d lines still without a result after %d tries; they are reported by `map`",
                        ledger.name, gave_up, self.s.max_attempts)
        self.finished[ledger.name] = event
        ledger.close()
        del self.active[ledger.name]

    # -- cancelling -------------------------------------------------------------------------------

    def cancel_open(self) -> list[str]:
        """Cancel every batch of the range the ledgers hold open; each cancel is recorded first.
        Returns the batch ids cancelled. A later run resubmits their lines without a result."""
        self.load()
        cancelled = []
        try:
            for name, ledger in self.active.items():
                a = ledger.state.current
                if a is None or not a.live or a.batch_id is None or a.status in TERMINAL or a.status == "cancelling":
                    continue
                slot = self.scheduler.by_name.get(a.endpoint)
                if slot is None:
                    log.error("%s: batch %s runs on endpoint %r, which is not configured; not cancelled",
                              name, a.batch_id, a.endpoint)
                    continue
                ledger.record("cancel", attempt=a.id, reason="asked")
                self.record_status(ledger, a, slot.service.cancel(a.batch_id))
                cancelled.append(a.batch_id)
        finally:
            for ledger in self.active.values():
                ledger.close()
        return cancelled

    # -- reports ----------------------------------------------------------------------------------

    def lines_done(self) -> int:
        done = sum(e["ok"] + e["refused"] + e["failed"] + e["gave_up"] for e in self.finished.values())
        for name, ledger in self.active.items():
            done += len(self.final.get(name, {}))
            current = ledger.state.current
            if current is not None and current.live:
                done += current.completed + current.failed
        return done

    def summary(self) -> Counter:
        totals: Counter = Counter()
        for event in self.finished.values():
            totals.update({k: event[k] for k in ("ok", "refused", "failed", "gave_up")})
        totals["files_done"] = len(self.finished)
        totals["files_elsewhere"] = len(self.elsewhere)
        return totals
