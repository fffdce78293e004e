"""Pack verification requests into Batch API input files, under every limit at once.

Files are filled in reading order and cut before the line that would break any limit: lines,
bytes, or estimated tokens (text by the model's encoding, images by the tile rule, plus the
completion allowance). Each request is counted exactly, so a file is filled to its limit instead of
to an average-based guess.

Output folder:
    <prefix>_0001.jsonl ...    the input files, numbered from 1 as the seed's were (standard batch
                               format, also fine for `vllm run-batch`)
    manifest.json              files, lines, bytes, estimated tokens, sha256 (schema_version)
    packed_ids.jsonl           every packed custom_id with its file and tokens: the incremental skip
    pack.errors.jsonl          rollouts that could not become a request, with the reason

Durability: a file is written under a temporary name, fsynced and renamed; then its ids are
appended to packed_ids.jsonl; then the manifest is replaced atomically. On start, ids whose file
is not in the manifest (a crash between those steps) are dropped, and that file is written again
under the same name with the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rollkit.batch.limits import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA_VERSION,
    PACK_ERRORS_NAME,
    PACKED_IDS_NAME,
    TARGETS,
    FileLimits,
    line_route,
)
from rollkit.batch.results import ok_ids
from rollkit.batch.verify_requests import (
    ContextError,
    JudgePrompt,
    RequestError,
    RequestOptions,
    build_request,
    request_tokens,
)
from rollkit.content.images import ImageError
from rollkit.content.rollouts import rollout_items
from rollkit.store.atomic import AtomicFile, write_json
from rollkit.store.result_log import DigestTable, ErrorLog, KeyedLog, dump_line, id_digest

log = logging.getLogger("rollkit")


class PackError(Exception):
    """A folder packed with other settings: fatal."""


@dataclass
class PackSettings:
    out_dir: Path
    model: str
    target: str = "azure"
    limits: FileLimits = TARGETS["azure"].limits
    prefix: str = "batch"
    max_completion_tokens: int = 8192
    max_image_side: int | None = None
    verified: Sequence[str | Path] = ()  # result files/folders: ids with a good result are left out
    image_root: str | Path | None = None  # --image-root: where relative image paths start
    prompt: JudgePrompt = field(default_factory=JudgePrompt.built_in)  # --prompt-file
    max_model_len: int | None = None  # --max-model-len (vllm): each line's prompt + reply fits in it


@dataclass
class PackReport:
    new_files: list[dict] = field(default_factory=list)
    requests: int = 0
    already_packed: int = 0
    already_verified: int = 0
    duplicates: int = 0
    errors: int = 0


def load_manifest(out_dir: Path) -> dict | None:
    path = out_dir / MANIFEST_NAME
    if not path.exists():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("schema_version") != MANIFEST_SCHEMA_VERSION:
        raise PackError(f"{path}: schema_version {manifest.get('schema_version')} is not "
                        f"{MANIFEST_SCHEMA_VERSION}; pack into a new folder")
    return manifest


def _settings_of(settings: PackSettings) -> dict:
    url, model = line_route(settings.target, settings.model)
    limits = settings.limits
    return {"target": settings.target, "model": model, "url": url, "prompt": settings.prompt.name,
            "prompt_sha256": settings.prompt.sha256,
            "max_completion_tokens": settings.max_completion_tokens, "max_image_side": settings.max_image_side,
            "max_model_len": settings.max_model_len,
            "limits": {"max_lines": limits.max_lines, "max_bytes": limits.max_bytes,
                       "max_tokens_per_file": limits.max_tokens}}


def _check_same_settings(manifest: dict, wanted: dict, out_dir: Path) -> None:
    # Requests of one folder must be comparable: one model per file (Azure requires it) and one
    # prompt, or results of different prompts would be mixed without anyone noticing.
    for key in ("target", "model", "url", "prompt_sha256", "max_completion_tokens", "max_model_len"):
        if manifest.get(key) != wanted[key]:
            raise PackError(f"{out_dir} was packed with {key}={manifest.get(key)!r}, not {wanted[key]!r}; "
                            "pack into a new --out-dir")


class _FileWriter:
    """The file being filled: written straight to disk, so memory holds only its ids."""

    def __init__(self, path: Path):
        self.path = path
        self.file = AtomicFile(path, "wb")
        self.handle = self.file.handle
        self.sha = hashlib.sha256()
        self.lines = self.bytes = self.tokens = 0
        self.ids: list[tuple[str, int]] = []

    def fits(self, size: int, tokens: int, limits: FileLimits) -> bool:
        return (self.lines + 1 <= limits.max_lines and self.bytes + size <= limits.max_bytes
                and (limits.max_tokens is None or self.tokens + tokens <= limits.max_tokens))

    def add(self, line: bytes, custom_id: str, tokens: int) -> None:
        self.handle.write(line)
        self.sha.update(line)
        self.lines, self.bytes, self.tokens = self.lines + 1, self.bytes + len(line), self.tokens + tokens
        self.ids.append((custom_id, tokens))

    def finish(self) -> dict:
        self.file.commit()
        return {"name": self.path.name, "lines": self.lines, "bytes": self.bytes, "tokens": self.tokens,
                "sha256": self.sha.hexdigest()}

    def discard(self) -> None:
        self.file.discard()


class Packer:
    """`Packer(settings).run(paths)`: packs every new rollout, returns a PackReport."""

    def __init__(self, settings: PackSettings):
        self.s = settings
        url, model = line_route(settings.target, settings.model)
        self.options = RequestOptions(model, url, settings.max_completion_tokens, settings.max_image_side,
                                      settings.prompt, settings.max_model_len)
        self.report = PackReport()
        self.writer: _FileWriter | None = None
        self.current: set[str] = set()  # ids in the open file; earlier files are in packed_ids

    def run(self, paths: Sequence[str | Path]) -> PackReport:
        out = self.s.out_dir
        out.mkdir(parents=True, exist_ok=True)
        wanted = _settings_of(self.s)
        self.manifest = load_manifest(out) or {"schema_version": MANIFEST_SCHEMA_VERSION, **wanted, "files": []}
        _check_same_settings(self.manifest, wanted, out)
        verified = self._verified_ids()
        with KeyedLog(out / PACKED_IDS_NAME, id_field="custom_id") as packed, \
                ErrorLog(out / PACK_ERRORS_NAME) as errors:
            self.packed = packed
            self._drop_unlisted()
            try:
                for item, custom_id in rollout_items(paths, self.s.image_root):
                    self._one(item, custom_id, verified, errors)
                self._close_file()
            finally:
                if self.writer is not None:
                    self.writer.discard()
        return self.report

    def _verified_ids(self) -> DigestTable:
        table = DigestTable()
        for custom_id in ok_ids(self.s.verified):
            table.add(id_digest(custom_id))
        return table

    def _drop_unlisted(self) -> None:
        listed = {f["name"] for f in self.manifest["files"]}
        orphans = [r["custom_id"] for r in self.packed.iter_records() if r.get("file") not in listed]
        if orphans:
            log.warning("dropping %d packed ids of a file the manifest does not list (a crash mid-pack)",
                        len(orphans))
            self.packed.drop(orphans)

    def _one(self, item, custom_id: str | None, verified: DigestTable, errors: ErrorLog) -> None:
        if item.record is None:
            self.report.errors += 1
            log.warning("%s", item.error)
            errors.add(entry_id=None, source=item.source, line=item.line, stage="pack", reason="bad_input",
                       message=item.error or "unreadable")
            return
        record = item.record
        if custom_id in self.packed:
            self.report.already_packed += 1
            return
        if id_digest(custom_id) in verified or _has_verdict(record):
            self.report.already_verified += 1
            return
        if custom_id in self.current:
            self.report.duplicates += 1
            log.warning("%s: rollout id %s appears twice; packed once", item.where, custom_id)
            return
        try:
            request = build_request(record, item.source, custom_id, self.options)
        except (RequestError, ImageError, ValueError) as exc:
            self.report.errors += 1
            log.warning("%s: %s", item.where, exc)
            errors.add(entry_id=custom_id, source=item.source, line=item.line, stage="pack",
                       reason=_error_reason(exc),
                       message=f"{item.where}: {exc}")
            return
        line, tokens, limits = dump_line(request), request_tokens(request), self.s.limits
        if len(line) > limits.max_bytes or (limits.max_tokens is not None and tokens > limits.max_tokens):
            self.report.errors += 1
            log.warning("%s: request too large for the file limits", item.where)
            errors.add(entry_id=custom_id, source=item.source, line=item.line, stage="pack", reason="too_large",
                       message=f"one request of {len(line)} bytes and {tokens} tokens is over the file limits; "
                               "raise them or downscale images with --max-image-side")
            return
        self._add(line, custom_id, tokens)

    def _add(self, line: bytes, custom_id: str, tokens: int) -> None:
        if self.writer is not None and not self.writer.fits(len(line), tokens, self.s.limits):
            self._close_file()
        if self.writer is None:
            self.writer = _FileWriter(self._next_path())
        self.writer.add(line, custom_id, tokens)
        self.current.add(custom_id)
        self.report.requests += 1

    def _next_path(self) -> Path:
        # a file's number is its place in the manifest, from 1: the seed's `batch_0003` is batch 3,
        # which is what --start-index/--end-index count (folders packed before named theirs from 0)
        return self.s.out_dir / f"{self.s.prefix}_{len(self.manifest['files']) + 1:04d}.jsonl"

    def _close_file(self) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        entry = writer.finish()
        for custom_id, tokens in writer.ids:
            self.packed.append({"custom_id": custom_id, "file": entry["name"], "tokens": tokens})
        self.packed.sync()
        self.manifest["files"].append(entry)
        write_json(self.s.out_dir / MANIFEST_NAME, self.manifest, indent=1)
        self.report.new_files.append(entry)
        self.current.clear()


def _error_reason(exc: Exception) -> str:
    if isinstance(exc, ImageError):
        return "bad_image"
    return "over_context" if isinstance(exc, ContextError) else "bad_rollout"


def _has_verdict(record: dict) -> bool:
    """A rollout that went through `map` with a verdict or a refusal (mapped files can be packed again)."""
    return record.get("verification_status") in ("ok", "no_conclusion", "refused")
