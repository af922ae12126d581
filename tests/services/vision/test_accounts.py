"""Faces bound to accounts, and what deleting or renaming an account does to them: over the real
bus, with a real auth service, real photos and, where the broker has shared subscriptions, two
vision workers sharing one database (the second must follow everything the first does)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from broker.client import Bus
from schemas.auth import (
    AUTH_DELETE_USER,
    AUTH_DELETIONS,
    AUTH_LOGIN,
    AUTH_LOGOUT,
    AUTH_REGISTER,
    AUTH_USER_DELETED,
    AUTH_USER_RENAMED,
    AUTH_VERIFY,
    AuthError,
    DeleteUserRequest,
    DeletionsRequest,
    LoginRequest,
    LogoutRequest,
    RegisterRequest,
    UserDeleted,
    UserRenamed,
    VerifyRequest,
)
from schemas.errors import ServiceError
from schemas.vision import (
    VISION_ENROL,
    VISION_ENROLLED,
    Enrolled,
    EnrolRequest,
    RecogniseRequest,
    VisionError,
)
from services.auth.service import run_auth
from services.vision.config import VisionSettings
from services.vision.faces import Faces
from services.vision.models import DeletionCursor, FaceEmbedding, Subject
from services.vision.service import run_vision
from tests.conftest import (
    FACES,
    NO_PHOTOS,
    PHOTOS_ABSENT,
    Backend,
    auth_settings,
    create_database,
    drop_database,
    isolated,
)
from tests.support import unique

if PHOTOS_ABSENT:  # the photos are read here, before any test could be skipped
    pytest.skip(NO_PHOTOS, allow_module_level=True)

OBAMA = [(FACES / "train/obama" / name).read_bytes() for name in ("obama.jpg", "obama2.jpg")]
OBAMA_TEST = (FACES / "test/obama1.jpg").read_bytes()
BIDEN = (FACES / "train/biden/biden.jpg").read_bytes()


class World:
    """An auth service, the vision workers and a bus of the bridge's, on a namespace of their
    own; the test task is in the vision database's context."""

    def __init__(self, backend: Backend, tmp_path: Path) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self.bus: Bus
        self.workers: list[Faces] = []

    async def account(self, prefix: str) -> tuple[str, int, str]:
        """A new user: name, id, token."""
        name = unique(prefix)
        await self.bus.request(AUTH_REGISTER, RegisterRequest(username=name, password="pw"))
        return (name, *await self.token_of(name))

    async def token_of(self, name: str) -> tuple[int, str]:
        token = (await self.bus.request(AUTH_LOGIN, LoginRequest(username=name,
                                                                 password="pw"))).token
        verified = await self.bus.request(AUTH_VERIFY, VerifyRequest(token=token))
        return verified.user_id, token

    async def everywhere(self, check: Callable[[Faces], bool], within: float = 1.0) -> None:
        """Wait until ``check`` holds on every worker."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not all(check(worker) for worker in self.workers):
            assert loop.time() < deadline, f"not on every worker within {within} s"
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def world(backend: Backend, tmp_path: Path, auth_url: str,
                vision_url: str) -> AsyncIterator[World]:
    """Auth and vision on these databases: two vision workers where the broker shares
    subscriptions, else one."""
    own = isolated(backend)
    if own.shared_group is not None:
        own = replace(own, shared_group=unique("vision"))
    settings = VisionSettings(data_dir=tmp_path, database_url=vision_url, threshold=None)
    found = World(own, tmp_path)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(
            run_auth(own.bus("auth"), auth_settings(tmp_path, auth_url, None)))
        for _ in range(2 if own.shared_group else 1):
            found.workers.append(
                await stack.enter_async_context(run_vision(own.bus("vision"), settings)))
        found.bus = await stack.enter_async_context(Bus(own.bus("bridge"), role="bridge"))
        yield found


@contextlib.asynccontextmanager
async def databases(backend: Backend) -> AsyncIterator[tuple[str, str]]:
    """Fresh auth and vision databases, dropped afterwards."""
    urls = (await create_database(backend, "auth"), await create_database(backend, "vision"))
    try:
        yield urls
    finally:
        for url in urls:
            await drop_database(url)


@contextlib.asynccontextmanager
async def fresh_world(backend: Backend, tmp_path: Path) -> AsyncIterator[World]:
    async with databases(backend) as urls, world(backend, tmp_path, *urls) as found:
        yield found


async def enrol(faces: Faces, name: str, photo: bytes, token: str | None = None) -> bool:
    return (await faces.enrol(EnrolRequest(name=name, image=photo, token=token))).bound


async def test_a_face_binds_only_with_its_users_token(backend: Backend, tmp_path: Path) -> None:
    async with fresh_world(backend, tmp_path) as w:
        ann, ann_id, ann_token = await w.account("ann")
        _, _, bob_token = await w.account("bob")
        image = base64.b64encode(OBAMA[0]).decode()

        # Forged over MQTT: fields claiming a binding are ignored, the face only greets.
        forged = await w.bus.request_raw(VISION_ENROL, {
            "name": ann, "image": image, "owner": ann, "owner_id": ann_id, "bound": True})
        assert forged["bound"] is False
        # Somebody else's token, a made-up one, a logged-out one: refused, nothing stored.
        _, revoked = await w.token_of(ann)
        await w.bus.request(AUTH_LOGOUT, LogoutRequest(token=revoked))
        for token, code, field in ((bob_token, VisionError.WRONG_USER, "name"),
                                   ("not.a.token", AuthError.TOKEN_INVALID, "token"),
                                   (revoked, AuthError.TOKEN_INVALID, "token")):
            with pytest.raises(ServiceError) as caught:
                await w.bus.request(VISION_ENROL, EnrolRequest(name=ann, image=OBAMA[0],
                                                               token=token))
            assert (caught.value.code, caught.value.field) == (code, field)
        assert await FaceEmbedding.filter(subject__name=ann).count() == 1

        reply = await w.bus.request(VISION_ENROL, EnrolRequest(name=ann, image=OBAMA[0],
                                                               token=ann_token))
        assert (reply.bound, reply.photos) == (True, 2)
        rows = await FaceEmbedding.filter(subject__name=ann).order_by("id")
        assert [row.owner_id for row in rows] == [None, ann_id]
        # Every worker has both rows, and the one that did not enrol it knows which is bound:
        # the same photo twice is a tie, which the bound one wins.
        await w.everywhere(lambda worker: worker.gallery.count(ann) == 2)
        seen = await w.workers[-1].recognise(RecogniseRequest(image=OBAMA[0]))
        assert [(face.name, face.bound) for face in seen.faces] == [(ann, True)]

        # A forged gallery event cannot add a face that is not stored, nor rename one: the
        # workers read the row it names, under its stored name.
        row = await FaceEmbedding.filter(subject__name=ann, owner_id=None).first()
        assert row is not None
        engine = w.workers[0].engine
        for embedding_id in (row.id + 1000, row.id):
            await w.bus.publish(VISION_ENROLLED, Enrolled(
                name="mallory", engine=engine.name, model_version=engine.model_version,
                embedding_id=embedding_id, worker="forger"))
        await w.everywhere(lambda worker: worker.gallery.count(ann) == 3)
        assert all("mallory" not in worker.gallery.subjects for worker in w.workers)


async def test_a_deleted_accounts_faces_leave_every_worker(
    backend: Backend, tmp_path: Path
) -> None:
    async with fresh_world(backend, tmp_path) as w:
        ann, ann_id, ann_token = await w.account("ann")
        bob, _, _ = await w.account("bob")
        first = w.workers[0]
        for photo in OBAMA:
            assert await enrol(first, ann, photo, ann_token)
        assert not await enrol(first, ann, BIDEN)  # somebody else's, under her name
        await enrol(first, bob, BIDEN)
        await w.everywhere(lambda worker: worker.gallery.count(ann) == 3)
        before = await w.workers[-1].recognise(RecogniseRequest(image=OBAMA_TEST))
        assert before.faces[0].name == ann

        await w.bus.request(AUTH_DELETE_USER, DeleteUserRequest(token=ann_token))

        await w.everywhere(lambda worker: worker.gallery.count(ann) == 0)
        for worker in w.workers:  # the second worker does not recognise her either
            after = await worker.recognise(RecogniseRequest(image=OBAMA_TEST))
            assert after.faces[0].name is None
            assert worker.gallery.count(bob) == 1
        assert not await Subject.exists(name=ann)
        assert await FaceEmbedding.filter(owner_id=ann_id).count() == 0

        # The name is taken again, by a new account with its own face; the old deletion
        # redelivered leaves that face alone.
        await w.bus.request(AUTH_REGISTER, RegisterRequest(username=ann, password="pw"))
        new_id, new_token = await w.token_of(ann)
        assert await enrol(first, ann, OBAMA[0], new_token)
        await w.everywhere(lambda worker: worker.gallery.count(ann) == 1)
        async with Bus(w.backend.bus("auth"), role="auth") as auth:
            await auth.publish(AUTH_USER_DELETED, (await _tombstone(auth, ann_id)))
        await asyncio.sleep(0.3)
        assert all(worker.gallery.count(ann) == 1 for worker in w.workers)
        assert await FaceEmbedding.filter(owner_id=new_id).count() == 1


async def _tombstone(bus: Bus, user_id: int) -> UserDeleted:
    listed = await bus.request(AUTH_DELETIONS, DeletionsRequest())
    return next(d for d in listed.deletions if d.user_id == user_id)


async def test_a_renamed_accounts_bound_faces_move(backend: Backend, tmp_path: Path) -> None:
    async with fresh_world(backend, tmp_path) as w:
        ann, ann_id, ann_token = await w.account("ann")
        anna = unique("anna")
        first = w.workers[0]
        assert await enrol(first, ann, OBAMA[0], ann_token)
        assert not await enrol(first, ann, BIDEN)  # unbound: stays under the old name
        await w.everywhere(lambda worker: worker.gallery.count(ann) == 2)

        async with Bus(w.backend.bus("auth"), role="auth") as auth:
            renamed = UserRenamed(user_id=ann_id, old_username=ann, new_username=anna)
            for _ in range(2):  # a redelivery changes nothing
                await auth.publish(AUTH_USER_RENAMED, renamed)
                await w.everywhere(lambda worker: (worker.gallery.count(anna),
                                                   worker.gallery.count(ann)) == (1, 1))
        seen = await w.workers[-1].recognise(RecogniseRequest(image=OBAMA_TEST))
        assert (seen.faces[0].name, seen.faces[0].bound) == (anna, True)
        assert await FaceEmbedding.filter(subject__name=anna, owner_id=ann_id).count() == 1
        assert await FaceEmbedding.filter(subject__name=ann, owner_id=None).count() == 1


async def test_vision_catches_up_on_deletions_made_while_it_was_down(
    backend: Backend, tmp_path: Path
) -> None:
    async with databases(backend) as urls:
        async with world(backend, tmp_path, *urls) as w:
            ann, _, ann_token = await w.account("ann")
            bob, _, bob_token = await w.account("bob")
            assert await enrol(w.workers[0], ann, OBAMA[0], ann_token)
            assert await enrol(w.workers[0], bob, BIDEN, bob_token)
        # Vision is down: ann is deleted, and nobody hears it but auth.
        own = isolated(backend)
        async with (
            run_auth(own.bus("auth"), auth_settings(tmp_path, urls[0], None)),
            Bus(own.bus("bridge"), role="bridge") as bus,
        ):
            token = (await bus.request(AUTH_LOGIN, LoginRequest(username=ann,
                                                                password="pw"))).token
            await bus.request(AUTH_DELETE_USER, DeleteUserRequest(token=token))
        async with world(backend, tmp_path, *urls) as w:
            await w.everywhere(lambda worker: worker.gallery.count(ann) == 0, within=3.0)
            assert all(worker.gallery.count(bob) == 1 for worker in w.workers)
            assert not await Subject.exists(name=ann)
            assert await DeletionCursor.filter(id=1, last_seq=1).exists()
