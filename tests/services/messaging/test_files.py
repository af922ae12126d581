"""The file store over MQTT (svc/messaging/files/*): chunked uploads, content-addressed blobs
counted on disk, quota, ranged reads, abandoned uploads, and a user's files forgotten or
renamed. Each test runs its own messaging service, so that its settings and its disk are its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.client import Bus
from schemas.envelope import ErrorCode
from schemas.errors import ServiceError
from schemas.files import (
    CHUNK_MAX,
    FILES_ABORT,
    FILES_BEGIN,
    FILES_CHUNK,
    FILES_COMMIT,
    FILES_READ,
    FILES_STAT,
    AbortUpload,
    BeginUpload,
    CommitUpload,
    FileInfo,
    FileKey,
    ReadRequest,
    UploadChunk,
)
from schemas.messaging import MessagingError
from services.messaging.files import UPLOADS_PER_OWNER, Files
from services.messaging.service import Messaging, run_messaging
from tests.conftest import (
    Backend,
    create_database,
    drop_database,
    isolated,
    messaging_settings,
    photo,
)
from tests.support import unique

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


@dataclass(frozen=True)
class Store:
    bus: Bus
    messaging: Messaging

    @property
    def files(self) -> Files:
        return self.messaging.files

    def blobs(self) -> int:
        return self.files.blobs.count()

    async def put(self, owner: str, type_: str, name: str, data: bytes,
                  chunk: int = CHUNK_MAX) -> FileInfo:
        started = await self.bus.request(FILES_BEGIN, BeginUpload(owner=owner))
        for seq, offset in enumerate(range(0, len(data), chunk)):
            await self.bus.request(FILES_CHUNK, UploadChunk(
                upload_id=started.upload_id, seq=seq, data=data[offset:offset + chunk]))
        return await self.bus.request(FILES_COMMIT, CommitUpload(
            upload_id=started.upload_id, type=type_, name=name))

    async def get(self, owner: str, type_: str, name: str, length: int = CHUNK_MAX) -> bytes:
        stat = await self.bus.request(FILES_STAT, FileKey(owner=owner, type=type_, name=name))
        parts = []
        for offset in range(0, stat.size, length):
            read = await self.bus.request(FILES_READ, ReadRequest(
                owner=owner, type=type_, name=name, sha256=stat.sha256, offset=offset,
                length=length))
            parts.append(read.data)
        return b"".join(parts)


@contextlib.asynccontextmanager
async def store(backend: Backend, data_dir: Path, **settings: Any) -> AsyncIterator[Store]:
    own = isolated(backend)
    url = await create_database(own, "messaging")
    try:
        async with (
            run_messaging(own.bus("messaging"),
                          messaging_settings(data_dir, url, **settings)) as messaging,
            Bus(own.bus("bridge"), role="bridge") as bus,
        ):
            yield Store(bus, messaging)
    finally:
        await drop_database(url)


async def failure(call: Any) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        await call
    return caught.value


async def test_an_upload_in_chunks_reads_back_whole_and_in_ranges(
    backend: Backend, tmp_path: Path
) -> None:
    data = photo("misc/obama-1080p.jpg")
    assert len(data) > 2 * CHUNK_MAX  # several chunks, the last one short
    async with store(backend, tmp_path) as files:
        ann = unique("ann")
        stored = await files.put(ann, "photos", "obama.jpg", data)
        assert stored == FileInfo(owner=ann, type="photos", name="obama.jpg", size=len(data),
                                  content_type="image/jpeg",
                                  sha256=hashlib.sha256(data).hexdigest())
        assert await files.get(ann, "photos", "obama.jpg") == data
        assert await files.get(ann, "photos", "obama.jpg", length=1000) == data
        blob = files.files.blobs.path(stored.sha256)
        assert blob.read_bytes() == data and blob.parent.parent == files.files.blobs.blobs
        assert list(files.files.blobs.uploads.iterdir()) == []  # the upload became the blob
        past = await failure(files.bus.request(FILES_READ, ReadRequest(
            owner=ann, type="photos", name="obama.jpg", sha256=stored.sha256,
            offset=len(data), length=10)))
        assert (past.code, past.field) == (ErrorCode.INVALID, "offset")


async def test_the_same_bytes_are_one_blob_until_nothing_names_them(
    backend: Backend, tmp_path: Path
) -> None:
    async with store(backend, tmp_path) as files:
        ann, bob = unique("ann"), unique("bob")
        await files.put(ann, "profile", "me.png", PNG)
        await files.put(ann, "backup", "copy.png", PNG)
        await files.put(bob, "profile", "bob.png", PNG)
        assert files.blobs() == 1
        assert await files.files.used(ann) == 2 * len(PNG)  # each file counts for its owner

        await files.put(ann, "profile", "me.png", b"new bytes")  # replaced: the blob stays
        assert files.blobs() == 2
        await files.files.forget(ann)
        assert files.blobs() == 1  # bob's file still names it
        assert await files.get(bob, "profile", "bob.png") == PNG
        await files.files.forget(ann)  # again: nothing to do
        await files.files.forget(bob)
        assert files.blobs() == 0
        gone = await failure(files.bus.request(FILES_STAT, FileKey(owner=bob, type="profile",
                                                                    name="bob.png")))
        assert gone.code == MessagingError.FILE_NOT_FOUND


async def test_the_content_type_is_sniffed_from_the_bytes(
    backend: Backend, tmp_path: Path
) -> None:
    async with store(backend, tmp_path) as files:
        ann = unique("ann")
        jpeg = photo("misc/obama-1080p.jpg")
        # The name says PNG, the bytes are a JPEG; text has no magic number at all.
        assert (await files.put(ann, "x", "fake.png", jpeg)).content_type == "image/jpeg"
        assert (await files.put(ann, "x", "real.txt", PNG)).content_type == "image/png"
        assert (await files.put(ann, "x", "notes.txt", b"hello\n")).content_type == \
            "application/octet-stream"
        pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
        assert (await files.put(ann, "x", "doc", pdf)).content_type == "application/pdf"


async def test_quota_counts_the_users_other_files_and_replacements(
    backend: Backend, tmp_path: Path
) -> None:
    async with store(backend, tmp_path, quota=1000) as files:
        ann = unique("ann")
        await files.put(ann, "a", "one", b"1" * 600)
        over = await failure(files.put(ann, "a", "two", b"2" * 401))
        assert over.code == MessagingError.QUOTA_EXCEEDED
        await files.put(ann, "a", "two", b"2" * 400)  # exactly the quota
        await files.put(ann, "a", "one", b"3" * 600)  # a replacement counts only its new size
        bigger = await failure(files.put(ann, "a", "one", b"4" * 601))
        assert bigger.code == MessagingError.QUOTA_EXCEEDED
        assert await files.get(ann, "a", "one") == b"3" * 600  # the refusal changed nothing
        # A file bigger than the whole quota is refused as it arrives, not at commit.
        started = await files.bus.request(FILES_BEGIN, BeginUpload(owner=unique("bea")))
        early = await failure(files.bus.request(FILES_CHUNK, UploadChunk(
            upload_id=started.upload_id, seq=0, data=b"x" * 1001)))
        assert early.code == MessagingError.QUOTA_EXCEEDED
        assert files.files.uploads_going() == 0
        assert list(files.files.blobs.uploads.iterdir()) == []


async def test_the_service_refuses_a_file_over_the_cap(backend: Backend, tmp_path: Path) -> None:
    async with store(backend, tmp_path, max_upload=1000) as files:
        ann = unique("ann")
        refused = await failure(files.put(ann, "a", "big", b"x" * 1001, chunk=400))
        assert refused.code == ErrorCode.TOO_LARGE
        assert files.files.uploads_going() == 0 and files.blobs() == 0
        await files.put(ann, "a", "fits", b"x" * 1000, chunk=400)


async def test_chunks_come_in_order_to_an_upload_that_exists(
    backend: Backend, tmp_path: Path
) -> None:
    async with store(backend, tmp_path) as files:
        bus, ann = files.bus, unique("ann")
        started = await bus.request(FILES_BEGIN, BeginUpload(owner=ann))
        upload_id = started.upload_id
        await bus.request(FILES_CHUNK, UploadChunk(upload_id=upload_id, seq=0, data=b"ab"))
        skipped = await failure(bus.request(FILES_CHUNK, UploadChunk(
            upload_id=upload_id, seq=2, data=b"cd")))
        assert (skipped.code, skipped.field) == (MessagingError.UPLOAD_OUT_OF_ORDER, "seq")
        await bus.request(FILES_CHUNK, UploadChunk(upload_id=upload_id, seq=1, data=b"cd"))
        done = await bus.request(FILES_COMMIT, CommitUpload(upload_id=upload_id, type="t",
                                                            name="abcd"))
        assert done.size == 4 and await files.get(ann, "t", "abcd") == b"abcd"
        for late in (
            bus.request(FILES_CHUNK, UploadChunk(upload_id=upload_id, seq=2, data=b"e")),
            bus.request(FILES_COMMIT, CommitUpload(upload_id=upload_id, type="t", name="x")),
        ):
            assert (await failure(late)).code == MessagingError.UPLOAD_NOT_FOUND
        assert (await bus.request(FILES_ABORT, AbortUpload(upload_id=upload_id))).aborted is False

        empty = await bus.request(FILES_BEGIN, BeginUpload(owner=ann))
        nothing = await failure(bus.request(FILES_COMMIT, CommitUpload(
            upload_id=empty.upload_id, type="t", name="empty")))
        assert nothing.code == ErrorCode.INVALID


@pytest.mark.parametrize(("field", "value"), [
    ("type", "Profile"), ("type", "a" * 33), ("type", "a/b"), ("type", ""),
    ("name", "../etc/passwd"), ("name", "/etc/passwd"), ("name", "a\\b"), ("name", ".."),
    ("name", "a\x00b"), ("name", "x" * 256), ("name", "  "),
])
async def test_malformed_keys_are_refused_by_the_service(
    bus: Bus, field: str, value: str
) -> None:
    key = {"owner": unique("ann"), "type": "profile", "name": "me.png", field: value}
    with pytest.raises(ServiceError) as caught:
        await bus.request_raw(FILES_STAT, key)
    assert (caught.value.code, caught.value.field) == (ErrorCode.INVALID, field)


async def test_uploads_per_user_are_bounded_and_aborts_free_them(
    backend: Backend, tmp_path: Path
) -> None:
    async with store(backend, tmp_path) as files:
        ann = unique("ann")
        going = [await files.bus.request(FILES_BEGIN, BeginUpload(owner=ann))
                 for _ in range(UPLOADS_PER_OWNER)]
        busy = await failure(files.bus.request(FILES_BEGIN, BeginUpload(owner=ann)))
        assert busy.code == MessagingError.TOO_MANY_UPLOADS
        await files.bus.request(FILES_BEGIN, BeginUpload(owner=unique("bob")))  # others may
        aborted = await files.bus.request(FILES_ABORT,
                                          AbortUpload(upload_id=going[0].upload_id))
        assert aborted.aborted is True
        await files.bus.request(FILES_BEGIN, BeginUpload(owner=ann))


async def test_an_abandoned_upload_is_dropped_when_idle(backend: Backend, tmp_path: Path) -> None:
    async with store(backend, tmp_path, upload_idle=1.0) as files:
        started = await files.bus.request(FILES_BEGIN, BeginUpload(owner=unique("ann")))
        await files.bus.request(FILES_CHUNK, UploadChunk(upload_id=started.upload_id, seq=0,
                                                         data=b"half a file"))
        assert [p.name for p in files.files.blobs.uploads.iterdir()] == [started.upload_id]
        # The bridge that began it has died: nobody sends more.
        async with asyncio.timeout(5):
            while files.files.uploads_going():
                await asyncio.sleep(0.1)
        assert list(files.files.blobs.uploads.iterdir()) == []
        late = await failure(files.bus.request(FILES_CHUNK, UploadChunk(
            upload_id=started.upload_id, seq=1, data=b"the rest")))
        assert late.code == MessagingError.UPLOAD_NOT_FOUND


async def test_a_restart_drops_unfinished_uploads_and_stray_blobs(
    backend: Backend, tmp_path: Path
) -> None:
    own = isolated(backend)
    url = await create_database(own, "messaging")
    settings = messaging_settings(tmp_path, url)
    try:
        async with (
            run_messaging(own.bus("messaging"), settings) as messaging,
            Bus(own.bus("bridge"), role="bridge") as bus,
        ):
            ann = unique("ann")
            kept = await Store(bus, messaging).put(ann, "profile", "me.png", PNG)
            await bus.request(FILES_BEGIN, BeginUpload(owner=ann))  # never finished
            blobs = messaging.files.blobs
        stray = blobs.path("ab" * 32)  # a blob whose row never made it (a crash between)
        stray.parent.mkdir(exist_ok=True)
        stray.write_bytes(b"orphan")
        async with (
            run_messaging(own.bus("messaging"), settings) as messaging,
            Bus(own.bus("bridge"), role="bridge") as bus,
        ):
            assert list(blobs.uploads.iterdir()) == []
            assert not stray.exists() and blobs.path(kept.sha256).exists()
            assert await Store(bus, messaging).get(ann, "profile", "me.png") == PNG
    finally:
        await drop_database(url)


async def test_a_rename_moves_the_files_and_keys_that_clash_give_way(
    backend: Backend, tmp_path: Path
) -> None:
    async with store(backend, tmp_path) as files:
        old, new = unique("old"), unique("new")
        await files.put(old, "profile", "me.png", PNG)
        await files.put(old, "docs", "cv.pdf", b"%PDF-1.4 cv")
        await files.put(new, "profile", "me.png", b"left behind by a deleted account")
        await files.put(new, "docs", "other", b"kept")
        started = await files.bus.request(FILES_BEGIN, BeginUpload(owner=old))
        await files.files.rename(old, new)
        assert await files.get(new, "profile", "me.png") == PNG
        assert await files.get(new, "docs", "cv.pdf") == b"%PDF-1.4 cv"
        assert await files.get(new, "docs", "other") == b"kept"
        gone = await failure(files.bus.request(FILES_STAT, FileKey(owner=old, type="profile",
                                                                    name="me.png")))
        assert gone.code == MessagingError.FILE_NOT_FOUND
        assert files.blobs() == 3  # the clashing file's blob went with it
        # The upload going follows its owner to the new name.
        await files.bus.request(FILES_CHUNK, UploadChunk(upload_id=started.upload_id, seq=0,
                                                         data=b"late"))
        done = await files.bus.request(FILES_COMMIT, CommitUpload(
            upload_id=started.upload_id, type="docs", name="late"))
        assert done.owner == new
        await files.files.rename(old, new)  # again: nothing moves
        await files.files.rename(new, new)  # to itself: nothing either
        assert await files.get(new, "docs", "late") == b"late"
        assert files.blobs() == 4
