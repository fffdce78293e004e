"""Reading batch results: output and error files of OpenAI and Azure, `vllm run-batch` output, and
the seed's merged JSON (`[{"custom_id", "verification_response"}]`).

Every line is classified by fields, never by message text:

- `ok`: HTTP 200 with a reply (a `length` finish is still a paid reply: it is kept, and `map`
  reports when it has no conclusion);
- `refused`: a content-filter refusal (400 `content_filter` or finish_reason `content_filter`);
  final, never resubmitted;
- `failed`: any other 4xx, or a 200 with no text: resubmitting the same request would fail again;
- `retry`: 408/409/429/5xx, `batch_expired`, `batch_cancelled`, `request_timeout`, anything else.

OpenAI puts HTTP failures in the error file with `response.status_code` and `error: null`, and
non-HTTP ones (expired, cancelled) in `error` with `response: null`; vLLM writes one file with
`status_code` 400 and an `error` string. Azure lines may have no top-level `id`. All are read here.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rollkit.batch.limits import MANIFEST_NAME, PACK_ERRORS_NAME, PACKED_IDS_NAME, RESULTS_DIR
from rollkit.store.result_log import DigestTable, id_digest

log = logging.getLogger("rollkit")

FINAL = ("ok", "refused", "failed")
_RETRY_STATUS = {408, 409, 429}


@dataclass(frozen=True)
class LineResult:
    custom_id: str
    status: str  # "ok", "refused", "failed" or "retry"
    text: str | None = None
    model: str | None = None
    reason: str | None = None
    finish_reason: str | None = None


def _filtered_categories(results: object) -> list[str]:
    if not isinstance(results, dict):
        return []
    return sorted(k for k, v in results.items() if isinstance(v, dict) and v.get("filtered"))


def _refusal_reason(*filter_results: object) -> str:
    categories = sorted({c for r in filter_results for c in _filtered_categories(r)})
    return "content_filter" + (f" ({', '.join(categories)})" if categories else "")


def _from_body(custom_id: str, body: dict) -> LineResult:
    choices = body.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    text, finish = message.get("content"), choice.get("finish_reason")
    model = body.get("model")
    if finish == "content_filter":
        return LineResult(custom_id, "refused", None, model, _refusal_reason(choice.get("content_filter_results")),
                          finish)
    if not isinstance(text, str) or not text.strip():
        return LineResult(custom_id, "failed", None, model, f"empty reply (finish_reason={finish})", finish)
    return LineResult(custom_id, "ok", text, model, None, finish)


def _from_error(custom_id: str, status: int, body: object, error: object) -> LineResult:
    detail = body.get("error") if isinstance(body, dict) else None
    detail = detail if isinstance(detail, dict) else (error if isinstance(error, dict) else {})
    code = detail.get("code")
    if code == "content_filter":
        inner = detail.get("innererror") or {}
        return LineResult(custom_id, "refused", reason=_refusal_reason(inner.get("content_filter_result")))
    reason = f"http_{status}" + (f": {code}" if code else "")
    if status in _RETRY_STATUS or status >= 500:
        return LineResult(custom_id, "retry", reason=reason)
    if isinstance(error, str) and not code:
        reason += f": {error[:200]}"  # vLLM's error is a plain string; keep it for the user
    return LineResult(custom_id, "failed", reason=reason)


def classify_line(obj: object) -> LineResult | None:
    """The result of one line of any supported format; None when it has no custom_id."""
    if not isinstance(obj, dict) or not isinstance(obj.get("custom_id"), str):
        return None
    custom_id = obj["custom_id"]
    if isinstance(obj.get("verification_response"), str):  # the seed's merged JSON
        return LineResult(custom_id, "ok", obj["verification_response"], obj.get("verification_model"))
    response, error = obj.get("response"), obj.get("error")
    if isinstance(response, dict) and isinstance(response.get("status_code"), int):
        status, body = response["status_code"], response.get("body")
        if status == 200 and isinstance(body, dict):
            return _from_body(custom_id, body)
        return _from_error(custom_id, status, body, error)
    code = error.get("code") if isinstance(error, dict) else None
    return LineResult(custom_id, "retry", reason=str(code or error or "no response"))


# pack's and the processor's own files: never results, so a folder's listing leaves them out
BOOKKEEPING = (MANIFEST_NAME, PACKED_IDS_NAME, PACK_ERRORS_NAME)


def _folder_results(folder: Path) -> list[Path]:
    if (folder / MANIFEST_NAME).is_file():  # a batch folder: its results are in results/
        folder = folder / RESULTS_DIR
        if not folder.is_dir():
            log.warning("%s: no results yet (run batch_processor.py on this folder first)", folder.parent)
            return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".jsonl", ".json")
                  and p.name not in BOOKKEEPING and not p.name.endswith(".config.json"))


def result_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files named, and the *.jsonl/*.json files of folders named (sorted); a batch folder (one
    with manifest.json) stands for its results/ folder."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files.extend(_folder_results(path))
        elif path.is_file():
            files.append(path)
        else:
            log.warning("%s: no such result file or folder", path)
    return files


def _is_json_list(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(64).lstrip().lstrip(b"\xef\xbb\xbf").startswith(b"[")


def iter_lines(path: Path) -> Iterator[tuple[int, LineResult]]:
    """(offset, result) of every readable line of a JSONL result file; offsets serve `read_at`."""
    offset = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            start, offset = offset, offset + len(line)
            if not line.strip():
                continue
            try:
                result = classify_line(json.loads(line))
            except ValueError:
                result = None
            if result is None:
                log.warning("%s:%d: not a batch result line; skipped", path, number)
                continue
            yield start, result


def iter_results(paths: Sequence[str | Path]) -> Iterator[LineResult]:
    """Every result in the files and folders given, in order."""
    for path in result_files(paths):
        if _is_json_list(path):
            yield from filter(None, map(classify_line, json.loads(path.read_text(encoding="utf-8-sig"))))
        else:
            yield from (result for _, result in iter_lines(path))


def read_at(path: Path, offset: int) -> LineResult:
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while True:
            block = os.pread(fd, 1 << 16, offset)
            nl = block.find(b"\n")
            parts.append(block if nl == -1 else block[:nl])
            if nl != -1 or not block:
                break
            offset += len(block)
    finally:
        os.close(fd)
    result = classify_line(json.loads(b"".join(parts)))
    assert result is not None  # the line was classified when it was indexed
    return result


def ok_ids(paths: Sequence[str | Path]) -> Iterator[str]:
    """custom_ids with a good result in these files and folders."""
    return (r.custom_id for r in iter_results(paths) if r.status == "ok")


class ResultIndex:
    """custom_id -> where its best result is (a good one wins over any error), in ~32 bytes an id.

    JSONL files are indexed by byte offset and read back one line at a time, so `map` over
    millions of results holds digests, not replies. The seed's JSON lists (small) are kept whole.
    """

    _RANK = {"retry": 0, "failed": 1, "refused": 2, "ok": 3}

    def __init__(self, paths: Sequence[str | Path]):
        self.files = result_files(paths)
        self.table = DigestTable(with_values=True)
        self.inline: dict[str, LineResult] = {}
        for index, path in enumerate(self.files):
            if _is_json_list(path):
                for result in filter(None, map(classify_line, json.loads(path.read_text(encoding="utf-8-sig")))):
                    if self._better(result, self.get(result.custom_id)):
                        self.inline[result.custom_id] = result
                continue
            for offset, result in iter_lines(path):
                digest = id_digest(result.custom_id)
                old = self.table.get(digest)
                if old is None or self._RANK[result.status] >= (old & 3):
                    self.table.add(digest, (offset << 18) | (index << 2) | self._RANK[result.status])

    def _better(self, new: LineResult, old: LineResult | None) -> bool:
        return old is None or self._RANK[new.status] >= self._RANK[old.status]

    def get(self, custom_id: str) -> LineResult | None:
        value = self.table.get(id_digest(custom_id))
        found = None
        if value is not None:
            found = read_at(self.files[(value >> 2) & 0xFFFF], value >> 18)
        inline = self.inline.get(custom_id)
        if inline is not None and self._better(inline, found):
            return inline
        return found
