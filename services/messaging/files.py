"""Users' files: uploads in chunks, content-addressed storage, ranged reads (schemas/files.py).

An upload lives in this process only (its temporary file, its running SHA-256, the next chunk
it expects): it is begun, fed chunk by chunk in order, and committed under its key, which is
when the bytes become a blob (:mod:`services.messaging.blobs`) and the key a
:class:`~services.messaging.models.File` row. Nothing is held in memory beyond one chunk. An
upload that hears nothing for ``upload_idle`` seconds (its bridge died) is dropped by
:meth:`Files.sweep_uploads`; one a previous process left is dropped at start-up. Like presence,
uploads need the service to run as one instance.

Every change to rows and blobs together (commit, :meth:`Files.forget`, :meth:`Files.rename`) runs
under one lock, so a blob is removed only once no row names it, and never while a commit is about
to name it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from tortoise.functions import Sum

from schemas.envelope import ErrorCode
from schemas.errors import ServiceError
from schemas.files import (
    CHUNK_MAX,
    AbortReply,
    AbortUpload,
    BeginUpload,
    ChunkReply,
    CommitUpload,
    FileInfo,
    FileKey,
    ReadReply,
    ReadRequest,
    UploadChunk,
    UploadStarted,
)
from schemas.messaging import MessagingError
from services.messaging.blobs import Blobs
from services.messaging.models import File

log = logging.getLogger(__name__)

UPLOADS_PER_OWNER = 4  # uploads one user may have going at once


@dataclass
class _Upload:
    owner: str
    touched: float
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0
    next_seq: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def info(row: File) -> FileInfo:
    return FileInfo(owner=row.owner, type=row.file_type, name=row.file_name, size=row.size,
                    content_type=row.content_type, sha256=row.sha256)


def _not_found(type_: str, name: str) -> ServiceError:
    return ServiceError(MessagingError.FILE_NOT_FOUND, f"no file {type_}/{name}", "name")


class Files:
    def __init__(self, blobs: Blobs, *, max_upload: int, quota: int,
                 upload_idle: float) -> None:
        self.blobs = blobs
        self.max_upload = max_upload
        self.quota = quota
        self.upload_idle = upload_idle
        self._uploads: dict[str, _Upload] = {}
        self._store = asyncio.Lock()

    async def open(self) -> None:
        """Ready the disk: folders made, leftover uploads dropped, and blobs no row names
        (a crash between writing a blob and its row) removed."""
        dropped = await asyncio.to_thread(self.blobs.open)
        if dropped:
            log.info("dropped %d unfinished uploads of a previous run", dropped)
        named = {str(sha) for sha in await File.all().distinct().values_list("sha256",
                                                                           flat=True)}
        stray = [sha for sha in await asyncio.to_thread(lambda: list(self.blobs.stored()))
                 if sha not in named]
        for sha in stray:
            await asyncio.to_thread(self.blobs.remove, sha)
        if stray:
            log.info("removed %d blobs no file names", len(stray))

    # -- uploads -------------------------------------------------------------------------------

    async def begin(self, req: BeginUpload) -> UploadStarted:
        going = sum(1 for upload in self._uploads.values() if upload.owner == req.owner)
        if going >= UPLOADS_PER_OWNER:
            raise ServiceError(MessagingError.TOO_MANY_UPLOADS,
                               f"{req.owner} has {going} uploads going already")
        upload_id = uuid.uuid4().hex
        await asyncio.to_thread(self.blobs.start, upload_id)
        self._uploads[upload_id] = _Upload(req.owner, time.monotonic())
        return UploadStarted(upload_id=upload_id, chunk_max=CHUNK_MAX)

    def _upload(self, upload_id: str) -> _Upload:
        upload = self._uploads.get(upload_id)
        if upload is None:
            raise ServiceError(MessagingError.UPLOAD_NOT_FOUND,
                               "no such upload: it was committed, aborted or dropped as idle",
                               "upload_id")
        return upload

    async def chunk(self, req: UploadChunk) -> ChunkReply:
        upload = self._upload(req.upload_id)
        async with upload.lock:
            if self._uploads.get(req.upload_id) is not upload:  # dropped while we waited
                raise self._gone(req.upload_id)
            if req.seq != upload.next_seq:
                raise ServiceError(MessagingError.UPLOAD_OUT_OF_ORDER,
                                   f"expected chunk {upload.next_seq}, got {req.seq}", "seq")
            size = upload.size + len(req.data)
            if size > self.max_upload:
                await self._drop(req.upload_id)
                raise ServiceError(ErrorCode.TOO_LARGE,
                                   f"the file exceeds the limit of {self.max_upload} bytes")
            if size > self.quota:  # the exact check (with the user's other files) is at commit
                await self._drop(req.upload_id)
                raise self._over_quota()
            await asyncio.to_thread(self.blobs.append, req.upload_id, req.data, upload.digest)
            upload.size, upload.next_seq = size, upload.next_seq + 1
            upload.touched = time.monotonic()
            return ChunkReply(size=size)

    async def commit(self, req: CommitUpload) -> FileInfo:
        upload = self._upload(req.upload_id)
        async with upload.lock:
            if self._uploads.pop(req.upload_id, None) is not upload:
                raise self._gone(req.upload_id)
            try:
                return await self._store_upload(req, upload)
            finally:
                await asyncio.to_thread(self.blobs.drop_upload, req.upload_id)

    async def _store_upload(self, req: CommitUpload, upload: _Upload) -> FileInfo:
        if upload.size == 0:
            raise ServiceError(ErrorCode.INVALID, "the upload is empty: nothing to store")
        sha256 = upload.digest.hexdigest()
        content_type = await asyncio.to_thread(self.blobs.sniff, req.upload_id)
        async with self._store:
            old = await File.get_or_none(owner=upload.owner, file_type=req.type,
                                         file_name=req.name)
            used = await self.used(upload.owner) - (old.size if old else 0)
            if used + upload.size > self.quota:
                raise self._over_quota()
            await asyncio.to_thread(self.blobs.keep, req.upload_id, sha256)
            if old is None:
                return info(await File.create(
                    owner=upload.owner, file_type=req.type, file_name=req.name, sha256=sha256,
                    size=upload.size, content_type=content_type))
            replaced = old.sha256
            old.sha256, old.size, old.content_type = sha256, upload.size, content_type
            await old.save()
            await self._collect([replaced])
        return info(old)

    async def abort(self, req: AbortUpload) -> AbortReply:
        upload = self._uploads.get(req.upload_id)
        if upload is None:
            return AbortReply(aborted=False)
        async with upload.lock:
            return AbortReply(aborted=await self._drop(req.upload_id))

    async def _drop(self, upload_id: str) -> bool:
        if self._uploads.pop(upload_id, None) is None:
            return False
        await asyncio.to_thread(self.blobs.drop_upload, upload_id)
        return True

    def _gone(self, upload_id: str) -> ServiceError:
        return ServiceError(MessagingError.UPLOAD_NOT_FOUND,
                            f"upload {upload_id} ended meanwhile", "upload_id")

    def _over_quota(self) -> ServiceError:
        return ServiceError(MessagingError.QUOTA_EXCEEDED,
                            f"the user's files would exceed their quota of {self.quota} bytes")

    async def sweep_uploads(self) -> None:
        """Drop uploads idle for ``upload_idle`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(min(self.upload_idle / 2, 5.0))
            stale = time.monotonic() - self.upload_idle
            for upload_id, upload in list(self._uploads.items()):
                if upload.touched < stale and not upload.lock.locked():
                    log.info("dropped upload %s of %s: idle", upload_id, upload.owner)
                    await self._drop(upload_id)

    def uploads_going(self) -> int:
        return len(self._uploads)

    # -- reading -------------------------------------------------------------------------------

    async def stat(self, req: FileKey) -> FileInfo:
        row = await File.get_or_none(owner=req.owner, file_type=req.type, file_name=req.name)
        if row is None:
            raise _not_found(req.type, req.name)
        return info(row)

    async def read(self, req: ReadRequest) -> ReadReply:
        row = await File.get_or_none(owner=req.owner, file_type=req.type, file_name=req.name)
        if row is None or row.sha256 != req.sha256:
            raise _not_found(req.type, req.name)
        if req.offset >= row.size:
            raise ServiceError(ErrorCode.INVALID,
                               f"offset: past the end of the file ({row.size} bytes)", "offset")
        try:
            data = await asyncio.to_thread(self.blobs.read, row.sha256, req.offset, req.length)
        except FileNotFoundError as exc:  # replaced and collected since the row was read
            raise _not_found(req.type, req.name) from exc
        return ReadReply(data=data)

    async def exists(self, owner: str, type_: str, name: str) -> bool:
        """Whether ``owner`` has the file ``type_``/``name`` (a message's attachment)."""
        return await File.exists(owner=owner, file_type=type_, file_name=name)

    async def used(self, owner: str) -> int:
        """Bytes of ``owner``'s files, each counted whole (the same bytes in two files count
        twice: a quota is what the user stored, not what the disk holds)."""
        totals = await File.filter(owner=owner).annotate(total=Sum("size")).values("total")
        return int(totals[0]["total"] or 0) if totals else 0

    # -- accounts ------------------------------------------------------------------------------

    async def forget(self, username: str) -> None:
        """Remove every file of ``username`` (an account deleted) and their uploads going; blobs
        other users' files name stay. Doing it again does nothing."""
        for upload_id, upload in list(self._uploads.items()):
            if upload.owner == username:
                await self._drop(upload_id)
        async with self._store:
            rows = await File.filter(owner=username)
            await File.filter(owner=username).delete()
            await self._collect(row.sha256 for row in rows)

    async def rename(self, old: str, new: str) -> None:
        """Give ``old``'s files to ``new`` (an account renamed); uploads going follow. Files
        ``new`` already has (a deleted account's, left behind) give way where keys clash."""
        if old == new:
            return
        for upload in self._uploads.values():
            if upload.owner == old:
                upload.owner = new
        async with self._store:
            moving = {(row.file_type, row.file_name) for row in await File.filter(owner=old)}
            clashing = [row for row in await File.filter(owner=new)
                        if (row.file_type, row.file_name) in moving]
            await File.filter(id__in=[row.id for row in clashing]).delete()
            await File.filter(owner=old).update(owner=new)
            await self._collect(row.sha256 for row in clashing)

    async def _collect(self, hashes: Iterable[str]) -> None:
        """Remove the blobs among ``hashes`` that no file names any more (under the lock)."""
        for sha256 in set(hashes):
            if not await File.exists(sha256=sha256):
                await asyncio.to_thread(self.blobs.remove, sha256)
