"""Streaming tallies over stage outputs: memory grows with the number of files, datasets and step
positions, and by a 16-byte digest per rollout id, never by whole records.

Files are told apart by what their records hold: `steps_with_score` (rollouts; verified when they
carry a verdict), `generated_scores`/`best_answer` (rejection-sampling results), `*.summary.json`
(a stage's request counters). Verified files are read first, so a rollout given both bare and
verified (same `rollout_id`) counts once, with its verdict. Folders are searched for `.jsonl` and
`.summary.json` files. Batch folders (those with a `manifest.json`) hold requests, not records:
only the usage in their `results/` is read, as the Batch API stage's request counters.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rollkit.content.inputs import SIDE_FILE_SUFFIXES, iter_inputs, record_id
from rollkit.content.rollouts import rollout_items
from rollkit.export.labels import POLICIES, Policy
from rollkit.export.view import AnswerCheck, RolloutView, read_rollout
from rollkit.report.examples import ExamplePicker
from rollkit.store.digests import DigestTable, id_digest

log = logging.getLogger("rollkit")

MAX_POSITION = 20  # step positions past this are pooled into the last one
SCORE_BINS = 10
MAX_MATRIX_STEP = 10  # first-error positions past this are pooled
# folders of a pipeline run that hold no stage records: its state, the training rows, a report
SKIPPED_FOLDERS = {"pipeline_state", "training_data_files", "report"}
GENERIC_STEMS = {"rollouts", "verified", "verified_rollouts", "final_results", "results", "output"}


@dataclass
class StageCost:
    stage: str
    source: str
    model: str | None
    requests: dict
    price: tuple[float | None, float | None]


@dataclass
class Tallies:
    files: Counter = field(default_factory=Counter)  # kind -> files
    records: Counter = field(default_factory=Counter)  # kind -> records used
    unusable: list[str] = field(default_factory=list)  # what could not be used, and why
    bad_lines: int = 0
    repeats: int = 0  # rollouts seen again under the same rollout_id
    score_hist: dict[int, list[int]] = field(default_factory=dict)  # position -> counts per score bin
    right: Counter = field(default_factory=Counter)  # dataset -> rollouts reaching the answer
    rollouts: Counter = field(default_factory=Counter)  # dataset -> rollouts
    agreement: Counter = field(default_factory=Counter)  # (mc label, judge label) -> rollouts
    kept: dict[str, Counter] = field(default_factory=dict)  # policy -> {"kept", "filled", reason...}
    stages: list[StageCost] = field(default_factory=list)
    final_selected: int = 0


def dataset_label(record: dict, source: str) -> str:
    """The record's `dataset`, else its file's name (its folder's when the name is a stage's)."""
    given = record.get("dataset") or record.get("dataset_name")
    if isinstance(given, str) and given:
        return given
    path = Path(source)
    return path.parent.name if path.stem in GENERIC_STEMS else path.stem


def position_label(step: int | None, none: str) -> str:
    if step is None:
        return none
    return str(step + 1) if step < MAX_MATRIX_STEP else f"{MAX_MATRIX_STEP + 1}+"


def _first_record(path: Path) -> dict | None:
    try:
        return next((i.record for i in iter_inputs(path) if i.record is not None), None)
    except StopIteration:
        return None


@dataclass
class Found:
    records: list[Path] = field(default_factory=list)  # verified first
    summaries: list[Path] = field(default_factory=list)
    batch_dirs: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def find_files(paths: Sequence[str | Path]) -> Found:
    found = Found()
    records, summaries, skipped = found.records, found.summaries, found.skipped
    for given in map(Path, paths):
        if given.is_dir():
            found.batch_dirs += sorted(m.parent for m in given.rglob("manifest.json"))
            candidates = sorted(p for p in given.rglob("*") if p.is_file())
        elif given.exists():
            candidates = [given]
        else:
            skipped.append(f"{given}: not found")
            continue
        for path in candidates:
            if given.is_dir() and _not_records(path, given):
                continue
            if given.is_dir() and path.suffix == ".jsonl" and _training_rows(path):
                skipped.append(f"{path}: training rows of an export, not a stage's records")
                continue
            if path.name.endswith(".summary.json"):
                summaries.append(path)
            elif (path.suffix == ".jsonl" or path == given) and not path.name.endswith(SIDE_FILE_SUFFIXES):
                records.append(path)  # in folders only .jsonl: their .json files are state, not records
    verified = [p for p in records if "verification_status" in (_first_record(p) or {})]
    found.records = verified + [p for p in records if p not in verified]
    return found


def _not_records(path: Path, top: Path) -> bool:
    """Inside a batch folder (requests, not records), a folder of SKIPPED_FOLDERS, or a hidden one
    (an export's `.rollkit/` summaries and resized image copies)."""
    below = [folder for folder in path.parents if folder == top or top in folder.parents]
    return any(folder.name in SKIPPED_FOLDERS or (folder / "manifest.json").exists()
               or (folder != top and folder.name.startswith(".")) for folder in below)


# the shapes of export/formats.py's rows: step-labelled rows carry both of these, pairs the two
# responses, sft rows nothing but a conversation, its images and ids; no stage record looks like them
LABELLED_ROW_KEYS = {"label_policy", "filled_steps"}
PAIR_KEYS = {"chosen", "rejected"}
SFT_KEYS = {"conversations", "images", "entry_id", "rollout_id"}


def _training_rows(path: Path) -> bool:
    """By the first line's keys, read as plain JSON: such rows are not inputs (trl-prm's have no question)."""
    try:
        with path.open(encoding="utf-8") as lines:
            first = json.loads(next((line for line in lines if line.strip()), "{}"))
    except (OSError, ValueError):
        return False
    keys = set(first) if isinstance(first, dict) else set()
    return LABELLED_ROW_KEYS <= keys or PAIR_KEYS <= keys or ("conversations" in keys and keys <= SFT_KEYS)


class Collector:
    def __init__(self, answers: AnswerCheck | None = None, image_root: str | Path | None = None) -> None:
        self.t = Tallies()
        self.answers = answers or AnswerCheck()
        self.image_root = image_root  # --image-root: where relative image paths start
        self.examples = ExamplePicker()
        self.policies = [Policy(name, fill_unmeasured=fill) for name in POLICIES for fill in (False, True)]
        self._seen = DigestTable()

    def read(self, paths: Sequence[str | Path]) -> Tallies:
        found = find_files(paths)
        self.t.unusable.extend(found.skipped)
        for path in found.records:
            self._read_records(path)
        for path in found.summaries:
            self._read_summary(path)
        for folder in found.batch_dirs:
            self._read_batch(folder)
        return self.t

    def _read_batch(self, folder: Path) -> None:
        """The Batch API stage has no summary.json: its requests and tokens are read off the
        usage of every line in results/, its model off the manifest."""
        try:
            model = json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("model")
        except (OSError, ValueError) as exc:
            self.t.unusable.append(f"{folder / 'manifest.json'}: unreadable ({exc})")
            return
        counts = Counter()
        for path in sorted((folder / "results").glob("*.jsonl")):
            with open(path, "rb") as handle:
                for line in handle:
                    try:
                        response = json.loads(line).get("response") or {}
                    except (ValueError, AttributeError):
                        continue
                    usage = (response.get("body") or {}).get("usage") or {}
                    counts["sent"] += 1
                    counts["failed"] += response.get("status_code") != 200
                    counts["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
                    counts["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        self.t.files["batch folders"] += 1
        self.t.stages.append(StageCost("batch verification", str(folder), model, dict(counts), (None, None)))

    def _read_records(self, path: Path) -> None:
        other = 0
        for item, rollout_id in rollout_items(path, self.image_root):
            if item.record is None:
                self.t.bad_lines += 1
                if self.t.bad_lines <= 20:
                    self.t.unusable.append(item.error)
                continue
            record = item.record
            if isinstance(record.get("steps_with_score"), list):
                digest = id_digest(rollout_id or record_id(record))
                if digest in self._seen:
                    self.t.repeats += 1
                    continue
                self._seen.add(digest)
                self._rollout(record, str(path), rollout_id or record_id(record))
            elif "generated_scores" in record or "best_answer" in record:
                self.t.records["final results"] += 1
                self.t.final_selected += bool(record.get("selected"))
            else:
                other += 1
        kind = "rollout files" if other == 0 else "other files"
        self.t.files[kind] += 1
        if other:
            self.t.unusable.append(f"{path}: {other} records are neither rollouts nor final results")

    def _rollout(self, record: dict, source: str, rollout_id: str) -> None:
        view = read_rollout(record)
        self.examples.offer(record, view, source, rollout_id)
        verified = view.verification != "unverified"
        self.t.records["verified rollouts" if verified else "rollouts"] += 1
        dataset = dataset_label(record, source)
        self.t.rollouts[dataset] += 1
        self.t.right[dataset] += self.answers.is_right(record)
        for position, step in enumerate(view.steps):
            if step.measured:
                row = self.t.score_hist.setdefault(min(position, MAX_POSITION - 1), [0] * SCORE_BINS)
                row[min(int(step.score * SCORE_BINS), SCORE_BINS - 1)] += 1
        if verified and view.verification == "ok":
            self._agreement(view)
        for policy in self.policies:
            name = policy.name + (" + fill" if policy.fill_unmeasured else "")
            labels = policy.label(view)
            self.t.kept.setdefault(name, Counter())["kept" if labels.values is not None else labels.dropped] += 1

    def _agreement(self, view: RolloutView) -> None:
        mc = position_label(view.mc_first_error, "none")
        judge = "Correct" if view.judge_conclusion else position_label(view.judge_first_error, "unknown")
        self.t.agreement[(mc, judge)] += 1

    def _read_summary(self, path: Path) -> None:
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.t.unusable.append(f"{path}: unreadable ({exc})")
            return
        requests = summary.get("requests") if isinstance(summary, dict) else None
        if not isinstance(requests, dict):
            self.t.files["summaries without requests"] += 1
            return
        self.t.files["stage summaries"] += 1
        config = _config_beside(path)
        model = config.get("model") or config.get("generator_model")
        self.t.stages.append(StageCost(str(summary.get("stage") or path.name), str(path), model, requests,
                                       (config.get("price_in"), config.get("price_out"))))


def _config_beside(summary: Path) -> dict:
    config = summary.with_name(summary.name[:-len(".summary.json")] + ".config.json")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
