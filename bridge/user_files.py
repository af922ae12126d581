"""Routes of the user/file API (seed 003) for files: ``POST /api/upload``, ``GET /api/download``.

A file is the token user's, under the key (type, name); the messaging service stores it
(schemas/files.py). Neither route holds a whole file: an upload is parsed as it arrives
(:mod:`bridge.form_stream`) and sent on in chunks, a download is read back in chunks and
streamed out. docs/http-api.md has the choices the seed leaves open.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bridge.form_stream import FileForm, FileTooLarge, FormError, boundary_of
from bridge.user_family import UserFail, answer, ask, fail, fields, token_user
from schemas.envelope import ErrorCode
from schemas.files import (
    CHUNK_MAX,
    FILES_ABORT,
    FILES_BEGIN,
    FILES_CHUNK,
    FILES_COMMIT,
    FILES_READ,
    FILES_STAT,
    MAX_UPLOAD_DEFAULT,
    FileInfo,
    FileKey,
    FileRef,
    base_name,
)
from schemas.messaging import MessagingError

FORM_SLACK = 64 * 1024  # bytes a form may carry besides its file (boundaries, headers, fields)
MISSING = "missing file"
BAD_KEY = "invalid type of name"
NOT_FOUND = "your file not found"


def max_upload(request: Request) -> int:
    limit: int = getattr(request.state, "max_upload", MAX_UPLOAD_DEFAULT)
    return limit


def _too_large_message(limit: int) -> str:
    return f"file too large: the limit is {limit} bytes"


def _storing(limit: int) -> dict[str, tuple[int, str]]:
    """How the file store's refusals are answered."""
    return {
        ErrorCode.TOO_LARGE: (413, _too_large_message(limit)),
        MessagingError.QUOTA_EXCEEDED: (413, "file would exceed your storage quota"),
        MessagingError.TOO_MANY_UPLOADS: (429, "too many uploads at once"),
    }


class _Outgoing:
    """One upload to the messaging service, begun with its first chunk."""

    def __init__(self, request: Request, owner: str) -> None:
        self.request = request
        self.owner = owner
        self.domain = _storing(max_upload(request))
        self.upload_id: str | None = None
        self.seq = 0

    async def send(self, data: bytes) -> None:
        if self.upload_id is None:
            started = await ask(self.request, FILES_BEGIN, {"owner": self.owner}, self.domain)
            self.upload_id = started.upload_id
        await ask(self.request, FILES_CHUNK,
                  {"upload_id": self.upload_id, "seq": self.seq, "data": data}, self.domain)
        self.seq += 1

    async def commit(self, key: FileRef) -> FileInfo:
        assert self.upload_id is not None
        body = {"upload_id": self.upload_id, "type": key.type, "name": key.name}
        info = await ask(self.request, FILES_COMMIT, body, self.domain)
        self.upload_id = None  # committed: nothing to abort
        return info

    async def abort(self) -> None:
        """Best effort: the service drops an upload left idle anyway."""
        if self.upload_id is not None:
            with contextlib.suppress(UserFail):
                await ask(self.request, FILES_ABORT, {"upload_id": self.upload_id})


def _key(form: FileForm) -> FileRef:
    """The upload's type and (file) name, checked; 404 ``invalid type of name`` otherwise."""
    assert form.file_name is not None
    try:
        return FileRef.model_validate({"type": form.fields.get("type"),
                                       "name": base_name(form.file_name.decode("utf-8"))})
    except (UnicodeDecodeError, ValidationError) as exc:
        raise fail(404, BAD_KEY) from exc


async def upload(request: Request) -> JSONResponse:
    """Store the form's ``file`` as the token user's file ``type``/(its file name)."""
    user = await token_user(request)
    limit = max_upload(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_SLACK:
        raise fail(413, _too_large_message(limit))
    boundary = boundary_of(request.headers.get("content-type"))
    if boundary is None:
        raise fail(404, MISSING)
    outgoing = _Outgoing(request, user.username)
    key: FileRef | None = None
    try:
        form = FileForm(boundary, "file", frozenset({"type"}), limit)
        received = 0
        async for data in request.stream():
            received += len(data)
            if received > limit + FORM_SLACK:
                raise FileTooLarge
            form.feed(data)
            if key is None and form.file_name is not None and "type" in form.fields:
                key = _key(form)  # a bad key is refused before the file is sent on
            while form.pending >= CHUNK_MAX:
                await outgoing.send(form.take(CHUNK_MAX))
        form.finish()
        if form.file_name is None or form.file_size == 0:
            raise fail(404, MISSING)
        key = key or _key(form)
        while form.pending:
            await outgoing.send(form.take(CHUNK_MAX))
        await outgoing.commit(key)
    except FileTooLarge as exc:
        await outgoing.abort()
        raise fail(413, _too_large_message(limit)) from exc
    except FormError as exc:
        await outgoing.abort()
        raise fail(exc.status, exc.message) from exc
    except ClientDisconnect:
        await outgoing.abort()
        return answer(400, "the client went away before the file was complete")
    except BaseException:
        await outgoing.abort()
        raise
    return answer(200, "uploaded file successfully")


def _disposition(name: str) -> str:
    """``attachment`` with the file's name, RFC 6266: plain when it is plain ASCII."""
    if name.isascii() and '"' not in name and "\\" not in name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename*=utf-8''{quote(name, safe='')}"


async def download(request: Request) -> Response:
    """The token user's file ``type``/``name``: its bytes, with the content type sniffed when
    it was stored."""
    user = await token_user(request)
    given = await fields(request)
    try:
        key = FileKey.model_validate({"owner": user.username, "type": given.get("type"),
                                      "name": given.get("name")})
    except ValidationError as exc:
        raise fail(404, NOT_FOUND) from exc
    body = key.model_dump()
    stat = await ask(request, FILES_STAT, body,
                     {MessagingError.FILE_NOT_FOUND: (404, NOT_FOUND)})

    async def chunks() -> AsyncIterator[bytes]:
        # A failure now cannot change the status any more: the connection is cut short, and
        # the client sees fewer bytes than Content-Length.
        for offset in range(0, stat.size, CHUNK_MAX):
            read = await ask(request, FILES_READ, {**body, "sha256": stat.sha256,
                                                   "offset": offset, "length": CHUNK_MAX})
            yield read.data

    headers = {"Content-Length": str(stat.size), "Content-Disposition": _disposition(key.name),
               "X-Content-Type-Options": "nosniff", "ETag": f'"{stat.sha256}"'}
    return StreamingResponse(chunks(), media_type=stat.content_type, headers=headers)


async def has_file(request: Request, owner: str, type_: str, name: str) -> bool:
    """Whether ``owner`` has the file ``type_``/``name`` (a ``profile`` field names one); a
    malformed type or name is no file. Failures to ask raise :class:`UserFail` (503, 504)."""
    body: dict[str, Any] = {"owner": owner, "type": type_, "name": name}
    try:
        FileKey.model_validate(body)
    except ValidationError:
        return False
    try:
        await ask(request, FILES_STAT, body)
    except UserFail as exc:
        if exc.code == MessagingError.FILE_NOT_FOUND:
            return False
        raise
    return True


routes = [
    Route("/api/upload", upload, methods=["POST"], name="api_upload"),
    Route("/api/download", download, methods=["GET"], name="api_download"),
]
