"""The emulator's Files API: upload (`purpose=batch`), retrieve, list, content download, delete.

Routes under `/v1/files` (OpenAI) and `/openai/files` (Azure, `api-version` required) or
`/openai/v1/files` (Azure v1 API). Contents live in a temporary folder removed at exit, so large
files do not sit in memory. `uploads_by_sha256` counts every upload of each content, so tests can
prove a file was never uploaded twice.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from rollkit.emulator.shapes import error_response, json_response

PURPOSES = ("batch", "batch_output", "fine-tune", "assistants", "vision", "user_data")
_CHUNK = 1 << 20
# `expires_after` / `output_expires_after` seconds each service takes: OpenAI 1 hour to 30 days,
# Azure 14 to 30 days (Azure then allows 10,000 batch files instead of 500)
EXPIRY_SECONDS = {False: (3600, 2_592_000), True: (1_209_600, 2_592_000)}


def expiry_problem(value: Any, azure: bool, param: str) -> web.Response | None:
    """400 unless `value` is None or {"anchor": "created_at", "seconds": N} within the service's range."""
    if value is None:
        return None
    low, high = EXPIRY_SECONDS[azure]
    seconds = value.get("seconds") if isinstance(value, dict) else None
    if not isinstance(value, dict) or value.get("anchor") != "created_at":
        return error_response(400, f"'{param}.anchor' must be 'created_at'.", "invalid_request_error", param)
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not low <= seconds <= high:
        return error_response(400, f"'{param}.seconds' must be an integer between {low} and {high}.",
                              "invalid_request_error", param)
    return None


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    sha256: str
    path: Path
    expires_at: int | None = None

    def as_json(self) -> dict[str, Any]:
        """A `FileObject` as the services send it."""
        return {"id": self.id, "object": "file", "bytes": self.bytes, "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed",
                "status_details": None, "expires_at": self.expires_at}


class FileStore:
    def __init__(self, max_bytes: int, listed: bool = True):
        self.max_bytes = max_bytes
        self.listed = listed  # False: GET /files answers 404, as on servers without it
        self.root = Path(tempfile.mkdtemp(prefix="rollkit-emulator-files-"))
        self.files: dict[str, StoredFile] = {}
        self._ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        self.uploads_by_sha256: Counter[str] = Counter()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _new_id(self) -> str:
        return f"file-emu{next(self._ids):06d}{hashlib.md5(str(time.time_ns()).encode()).hexdigest()[:12]}"

    def add(self, content: bytes, filename: str, purpose: str, expiry: dict | None = None) -> StoredFile:
        """Store a file the server itself makes (batch output and error files)."""
        file_id = self._new_id()
        path = self.root / file_id
        path.write_bytes(content)
        now = int(time.time())
        stored = StoredFile(file_id, filename, purpose, len(content), now, hashlib.sha256(content).hexdigest(), path,
                            None if expiry is None else now + expiry["seconds"])
        self.files[file_id] = stored
        return stored

    def read(self, file_id: str) -> bytes:
        return self.files[file_id].path.read_bytes()

    def as_json(self) -> dict[str, Any]:
        return {"uploads_by_sha256": dict(self.uploads_by_sha256), "files": len(self.files)}

    # -- routes -----------------------------------------------------------------------------------

    async def upload(self, request: web.Request, azure: bool = False) -> web.Response:
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError, KeyError):
            return error_response(400, "Upload a file as multipart/form-data with 'file' and 'purpose'.",
                                  "invalid_request_error", "file")
        fields: dict[str, str] = {}
        stored: StoredFile | None = None
        try:
            while (part := await reader.next()) is not None:
                if part.name == "file":
                    stored = await self._receive(part)
                    if isinstance(stored, web.Response):
                        return stored
                elif part.name:
                    fields[part.name] = (await part.text())[:200]
        except (ValueError, AssertionError, RuntimeError):  # what aiohttp raises for a broken body
            return error_response(400, "The multipart body could not be read.", "invalid_request_error", "file")
        expiry = _form_expiry(fields)
        problem = expiry_problem(expiry, azure, "expires_after")
        if problem is not None:
            if isinstance(stored, StoredFile):
                stored.path.unlink(missing_ok=True)
            return problem
        if isinstance(stored, StoredFile) and expiry is not None:
            stored.expires_at = stored.created_at + expiry["seconds"]
        return self._accept(stored, fields.get("purpose"))

    async def _receive(self, part: Any) -> StoredFile | web.Response:
        file_id = self._new_id()
        path, digest, size = self.root / file_id, hashlib.sha256(), 0
        with open(path, "wb") as handle:
            while chunk := await part.read_chunk(_CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    handle.close()
                    path.unlink(missing_ok=True)
                    return error_response(400, f"File is too large: the limit is {self.max_bytes} bytes.",
                                          "invalid_request_error", "file", "file_too_large")
                digest.update(chunk)
                handle.write(chunk)
        return StoredFile(file_id, part.filename or "upload.jsonl", "", size, int(time.time()), digest.hexdigest(),
                          path)

    def _accept(self, stored: StoredFile | None, purpose: str | None) -> web.Response:
        if stored is None:
            return error_response(400, "Missing required parameter: 'file'.", "invalid_request_error", "file")
        if purpose not in PURPOSES:
            stored.path.unlink(missing_ok=True)
            return error_response(400, f"'{purpose}' is not a valid purpose.", "invalid_request_error", "purpose")
        stored.purpose = purpose
        self.files[stored.id] = stored
        self.uploads_by_sha256[stored.sha256] += 1
        return json_response(200, stored.as_json())

    def _find(self, request: web.Request) -> StoredFile | web.Response:
        file_id = request.match_info["file_id"]
        stored = self.files.get(file_id)
        if stored is None:
            return error_response(404, f"No such File object: {file_id}", "invalid_request_error", "id")
        return stored

    async def retrieve(self, request: web.Request) -> web.Response:
        found = self._find(request)
        return found if isinstance(found, web.Response) else json_response(200, found.as_json())

    async def content(self, request: web.Request) -> web.StreamResponse:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        return web.FileResponse(found.path, headers={"Content-Type": "application/octet-stream"})

    async def delete(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        del self.files[found.id]
        found.path.unlink(missing_ok=True)
        return json_response(200, {"id": found.id, "object": "file", "deleted": True})

    async def list(self, request: web.Request) -> web.Response:
        """Newest first (the default order), `purpose`, `after` and `limit` as the API has them."""
        if not self.listed:
            return error_response(404, "Unrecognized request URL (GET: /files).", "invalid_request_error")
        purpose = request.query.get("purpose")
        items = [f for f in reversed(self.files.values()) if purpose in (None, f.purpose)]
        if request.query.get("order") == "asc":
            items.reverse()
        return json_response(200, page(items, request, default_limit=10_000))


def _form_expiry(fields: dict[str, str]) -> dict | None:
    """`expires_after` of a multipart upload: the SDK sends it as `expires_after[anchor]` and
    `expires_after[seconds]` form fields."""
    anchor, seconds = fields.get("expires_after[anchor]"), fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    try:
        return {"anchor": anchor, "seconds": int(seconds or "")}
    except ValueError:
        return {"anchor": anchor, "seconds": None}


def page(items: list[Any], request: web.Request, default_limit: int) -> dict[str, Any]:
    """A cursor page of objects with `.id` and `.as_json()`: after the `after` id, at most `limit`."""
    after = request.query.get("after")
    if after is not None:
        ids = [item.id for item in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    try:
        limit = max(1, int(request.query.get("limit", default_limit)))
    except ValueError:
        limit = default_limit
    shown = items[:limit]
    return {"object": "list", "data": [item.as_json() for item in shown],
            "first_id": shown[0].id if shown else None, "last_id": shown[-1].id if shown else None,
            "has_more": len(items) > limit}
