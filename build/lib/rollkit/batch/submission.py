"""What one attempt uploads: the lines of a packed file still without a final result, shaped for the
endpoint that runs them.

The first attempt on an endpoint that matches the packed `model` and `url` uploads the packed
file itself. Otherwise a submission file is written under `submit/`: only the pending lines, with
`body.model` set to the endpoint's deployment or model and `url` to its route (Azure requires the
deployment name in every line). Its name carries its sha256, so the same lines for the same
endpoint always give the same file, and an upload found again after a crash is recognised.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rollkit.batch.limits import PACKED_IDS_NAME, SUBMIT_DIR
from rollkit.batch.results import FINAL, iter_results
from rollkit.batch.service import BatchService
from rollkit.store.atomic import AtomicFile
from rollkit.store.result_log import dump_line, line_id


@dataclass(frozen=True)
class Submission:
    path: Path
    sha256: str
    lines: int
    bytes: int
    tokens: int

    def upload_name(self, stem: str) -> str:
        return f"{stem}.{self.sha256[:12]}.jsonl"


def packed_lines(path: Path) -> Iterator[tuple[str, bytes]]:
    """(custom_id, line) of a packed file; `custom_id` comes first in every line pack writes."""
    with open(path, "rb") as handle:
        for line in handle:
            custom_id = line_id(line, "custom_id")
            if custom_id is not None:
                yield custom_id, line


def file_tokens(batch_dir: Path, name: str) -> dict[str, int]:
    """Estimated tokens of each line of one packed file, from packed_ids.jsonl."""
    tokens: dict[str, int] = {}
    path = batch_dir / PACKED_IDS_NAME
    with open(path, "rb") as handle:
        for line in handle:
            if f'"file": "{name}"'.encode() in line:
                record = json.loads(line)
                if record.get("file") == name:
                    tokens[record["custom_id"]] = int(record["tokens"])
    return tokens


def final_ids(result_paths: list[Path]) -> dict[str, str]:
    """custom_id -> final status ("ok" beats "refused" beats "failed") in these result files."""
    rank = {status: i for i, status in enumerate(reversed(FINAL))}
    out: dict[str, str] = {}
    for result in iter_results(result_paths):
        if result.status in FINAL and rank[result.status] > rank.get(out.get(result.custom_id, ""), -1):
            out[result.custom_id] = result.status
    return out


def _rewrite(line: bytes, url: str, model: str) -> bytes:
    request = json.loads(line)
    request["url"] = url
    request["body"]["model"] = model
    return dump_line(request)


def write_submission(packed: Path, pending: set[str], tokens: dict[str, int], dest_dir: Path,
                     url: str, model: str) -> Submission:
    """The pending lines of `packed`, rewritten for (url, model), in `dest_dir/<stem>.<sha12>.jsonl`."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    sha, lines, size, total = hashlib.sha256(), 0, 0, 0
    writing = AtomicFile(dest_dir / f"{packed.stem}.writing", "wb")  # named once its digest is known
    try:
        for custom_id, line in packed_lines(packed):
            if custom_id not in pending:
                continue
            line = _rewrite(line, url, model)
            writing.handle.write(line)
            sha.update(line)
            lines, size, total = lines + 1, size + len(line), total + tokens.get(custom_id, 0)
    except BaseException:
        writing.discard()
        raise
    digest = sha.hexdigest()
    path = writing.commit(dest_dir / f"{packed.stem}.{digest[:12]}.jsonl")
    return Submission(path, digest, lines, size, total)


def submission_for(batch_dir: Path, entry: dict, manifest: dict, pending: set[str] | None,
                   tokens: dict[str, int] | None, service: BatchService) -> Submission:
    """The file to upload for these pending lines (None: all of them) on this endpoint.
    `tokens`: estimated tokens per line (read from packed_ids.jsonl when not given)."""
    packed = batch_dir / entry["name"]
    if pending is None and manifest.get("url") == service.url and manifest.get("model") == service.model:
        return Submission(packed, entry["sha256"], entry["lines"], entry["bytes"], entry["tokens"])
    tokens = tokens if tokens is not None else file_tokens(batch_dir, entry["name"])
    if pending is None:
        pending = set(tokens)
    return write_submission(packed, pending, tokens, batch_dir / SUBMIT_DIR, service.url, service.model)
