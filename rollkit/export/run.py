"""The export loop: stream rollouts, label them, build rows, split, drop duplicates, write, count.

Memory stays flat in the input size: `pairs` keeps the rollouts waiting for a partner on disk
(pairing.py). `--balance` reads the input twice: the first pass only counts each row's class.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rollkit.content.inputs import InputItem, record_id
from rollkit.content.rollouts import judge_question, rollout_items
from rollkit.export import formats, visualprm
from rollkit.export.labels import Labels, Policy
from rollkit.export.pairing import WaitingRoom
from rollkit.export.split import TRAIN, SeenRows, split_of
from rollkit.export.view import AnswerCheck, read_rollout
from rollkit.export.writer import RowWriter, split_path
from rollkit.store.result_log import dump_line

log = logging.getLogger("rollkit")

_ID_FIELDS = ("rollout_id", "chosen_rollout_id", "rejected_rollout_id")


@dataclass(frozen=True)
class VisualPRMSettings:
    chat_schema: str = "conversations"
    tokens: visualprm.StepTokens = field(default_factory=visualprm.StepTokens)
    system: str = ""  # the system prompt, filled
    balance: bool = False
    error_sections: str = "all"


@dataclass(frozen=True)
class ExportSettings:
    inputs: Sequence[str]
    fmt: str
    policy: Policy
    output: Path
    splits: list[tuple[str, float]] = field(default_factory=list)
    answers: AnswerCheck = field(default_factory=AnswerCheck)
    absolute_images: bool = False
    placeholder: str = formats.DEFAULT_PLACEHOLDER
    image_root: str | None = None  # --image-root: where relative image paths start
    visualprm: VisualPRMSettings = field(default_factory=VisualPRMSettings)


@dataclass
class ExportCounts:
    records: int = 0  # readable input records
    bad_lines: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> rollouts
    duplicates: int = 0
    filled_rows: int = 0  # rows with a step filled by the monotone rule
    unpaired: int = 0  # pairs: rollouts left without a partner
    token_clash_rows: int = 0  # visualprm: rows with a step token as a word of a step's text
    rows: Counter = field(default_factory=Counter)  # split -> rows written
    files: dict = field(default_factory=dict)  # split -> path

    def as_dict(self) -> dict:
        return {**asdict(self), "dropped": dict(sorted(self.dropped.items())), "rows": dict(self.rows)}


def good(values: list, policy: Policy) -> bool:
    return all(v > policy.threshold if isinstance(v, float) else v for v in values)


class Exporter:
    def __init__(self, settings: ExportSettings) -> None:
        self.s = settings
        self.counts = ExportCounts()
        self.ctx = formats.RowContext(settings.output.parent, settings.absolute_images, settings.placeholder,
                                      settings.policy.name)
        self._seen = SeenRows()
        self._waiting = WaitingRoom()
        self._writers: dict[str, RowWriter] = {}
        self._balance: visualprm.Balance | None = None
        self._measuring = False  # --balance's first pass

    def run(self) -> ExportCounts:
        if self.s.fmt == "visualprm" and self.s.visualprm.balance:
            self._balance = visualprm.Balance()
            self._measuring = True
            self._pass()  # counts each row's class; writes nothing
            self._balance.cut()
            self._measuring = False
            self.counts, self._seen = ExportCounts(), SeenRows()
        schema = visualprm.schema(self.s.visualprm.chat_schema) if self.s.fmt == "visualprm" else \
            formats.schema(self.s.fmt, self.s.policy.name == "mc-soft")
        for name in [TRAIN, *(name for name, _ in self.s.splits)]:
            path = split_path(self.s.output, name, bool(self.s.splits))
            self._writers[name] = RowWriter(path, schema)
            self.counts.files[name] = str(path)
        try:
            self._pass()
        except BaseException:
            for writer in self._writers.values():
                writer.abort()
            raise
        finally:
            self.counts.unpaired = len(self._waiting)
            self._waiting.close()
        for writer in self._writers.values():
            writer.commit()
        return self.counts

    def _pass(self) -> None:
        for item, rollout_id in rollout_items(self.s.inputs, self.s.image_root):
            self._take(item, rollout_id)

    def _take(self, item: InputItem, rollout_id: str | None) -> None:
        if item.record is None:
            self.counts.bad_lines += 1
            log.warning("%s", item.error)
            return
        self.counts.records += 1
        record = {**item.record, "entry_id": record_id(item.record), "rollout_id": rollout_id}
        view = read_rollout(record)
        labels = self.s.policy.label(view)
        if labels.values is None:
            self.counts.dropped[labels.dropped] += 1
            return
        try:
            images = formats.image_paths(record, item.source, self.ctx)
        except formats.MissingImage as exc:
            if not self._measuring:
                log.warning("%s: %s", item.where, exc)
            self.counts.dropped["image_missing"] += 1
            return
        if self.s.fmt == "visualprm":
            self._visualprm(record, [step.text for step in view.steps], labels, images)
            return
        if self.s.fmt in ("trl-prm", "openrlhf-prm"):
            build = formats.trl_prm if self.s.fmt == "trl-prm" else formats.openrlhf_prm
            self._emit(build(record, [step.text for step in view.steps], labels, images, self.ctx), labels)
            return
        right, sound = self.s.answers.is_right(record), good(labels.values, self.s.policy)
        if self.s.fmt == "sft":
            if right and sound:
                self._emit(formats.sft(record, images), labels)
            else:
                self.counts.dropped["sft_wrong_answer" if not right else "sft_bad_step"] += 1
            return
        self._pair(record, images, labels, "rejected" if not right else "chosen" if sound else None)

    def _visualprm(self, record: dict, steps: list[str], labels: Labels, images: list[str]) -> None:
        v = self.s.visualprm
        marks = visualprm.step_marks(labels.values, self.s.policy.threshold)
        if v.error_sections != "all":
            section = visualprm.first_error_section(record.get("response"), marks)
            drop = visualprm.section_drop(v.error_sections, section)
            if drop:
                self.counts.dropped[drop] += 1
                return
        if v.chat_schema == "conversations" and len(images) > 1:  # `image` holds one path
            self.counts.dropped["several_images_need_messages_schema"] += 1
            return
        build = visualprm.conversations_row if v.chat_schema == "conversations" else visualprm.messages_row
        row = {**build(judge_question(record), steps, marks, images, v.system, v.tokens), **formats.ids(record),
               "label_policy": self.ctx.policy, "filled_steps": list(labels.filled_steps)}
        self._emit(row, labels, has_error=not all(marks), clash=v.tokens.clash(steps))

    def _pair(self, record: dict, images: list[str], labels: Labels, side: str | None) -> None:
        if side is None:
            self.counts.dropped["pairs_right_answer_bad_step"] += 1
            return
        key = dump_line({"entry_id": record["entry_id"], "response": record["response"]})
        if not self._seen.first_time(key):  # the same rollout twice must not pair with itself
            self.counts.duplicates += 1
            return
        # only what a pair needs waits, not the whole rollout
        slim = {"rollout_id": record["rollout_id"], "response": record["response"]}
        partner = self._waiting.pop_partner(record["entry_id"], side)
        if partner is None:
            self._waiting.wait(record["entry_id"], side, slim)
            return
        chosen, rejected = (slim, partner) if side == "chosen" else (partner, slim)
        self._write(formats.pair(record, chosen, rejected, images), record["entry_id"], labels)

    def _emit(self, row: dict, labels: Labels, has_error: bool = False, clash: bool = False) -> None:
        content = dump_line({k: v for k, v in row.items() if k not in _ID_FIELDS})
        if not self._seen.first_time(content):
            self.counts.duplicates += 1
            return
        if self._balance is not None:
            if self._measuring:
                self._balance.count(row["rollout_id"], has_error)
                return
            if not self._balance.keeps(row["rollout_id"], has_error):
                self.counts.dropped["balance_surplus"] += 1
                return
        self.counts.token_clash_rows += clash
        self._write(row, row["entry_id"], labels)

    def _write(self, row: dict, entry: str, labels: Labels) -> None:
        split = split_of(entry, self.s.splits)
        self._writers[split].add(row, dump_line(row))
        self.counts.rows[split] += 1
        self.counts.filled_rows += bool(labels.filled_steps)


def summary_lines(counts: ExportCounts, settings: ExportSettings) -> list[str]:
    dropped = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.dropped.items())) or "none"
    written = ", ".join(f"{split} {counts.rows[split]} -> {path}" for split, path in counts.files.items())
    lines = [f"export {settings.fmt}, labels {settings.policy.name}",
             f"  read      {counts.records} rollouts, {counts.bad_lines} unreadable lines",
             f"  dropped   {sum(counts.dropped.values())}: {dropped}",
             f"  duplicates {counts.duplicates} dropped",
             f"  filled    {counts.filled_rows} rows have steps filled by the monotone rule (filled_steps)",
             f"  written   {sum(counts.rows.values())} rows: {written}"]
    if settings.fmt == "pairs":
        lines.insert(-1, f"  unpaired  {counts.unpaired} rollouts had no partner of the other kind")
    if settings.fmt == "visualprm":
        tokens = settings.visualprm.tokens
        lines.insert(-1, f"  token clash {counts.token_clash_rows} rows have a step whose text holds "
                         f"{tokens.good!r} or {tokens.bad!r} as a word of its own"
                         + (" (--step-tokens '<+>,<->' avoids it)" if counts.token_clash_rows else ""))
    return lines


# What to change when every rollout was dropped for one reason: the flag that keeps them.
_REMEDY = {
    "unmeasured_steps": "the rollouts come from --mc-mode binary-search or adaptive, which leave steps "
                        "unmeasured; add --fill-unmeasured (the monotone rule rollout.py uses), or --labels judge",
    "scores_are_labels": "adaptive rollouts carry hard labels, not shares; take --labels mc-hard",
    "rollout_unparsed": "no rollout parsed into steps; check the rollouts' `response` and the rollout prompt",
    "sft_wrong_answer": "sft keeps only rollouts with the right answer; check --answer-format and --scoring-mode",
    "image_missing": "the images are not where the rollouts say; give --image-root",
}


def nothing_exported(counts: ExportCounts) -> str:
    """Why an export wrote no row, in one line, with the flag to change where one reason explains it."""
    top = counts.dropped.most_common(1)
    why = ", ".join(f"{reason} {n}" for reason, n in counts.dropped.most_common()) or "nothing dropped"
    remedy = _REMEDY.get(top[0][0]) if top and top[0][1] == counts.records else None
    return f"0 rows written from {counts.records} rollouts (dropped: {why})" + (f": {remedy}" if remedy else "")
