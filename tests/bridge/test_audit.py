"""The admins' audit log: every face admin action over HTTP (seed 002) and every admin made or
logged in is an entry naming the admin, the action, its target and when; only an admin's token
reads it, and nobody can write an entry in another admin's name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from broker.access import Access, mirror_may
from broker.client import Bus
from schemas.audit import (
    AUTH_AUDIT,
    AUTH_AUDIT_RECORD,
    AuditAction,
    AuditRecordRequest,
    AuditRequest,
)
from schemas.auth import AuthError
from schemas.errors import ServiceError
from tests.bridge.face_stack import FaceStack, face_stack
from tests.conftest import Backend, needs_photos
from tests.support import unique

pytestmark = needs_photos


@pytest.fixture(scope="module")
async def stack(backend: Backend,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FaceStack]:
    async with face_stack(backend, tmp_path_factory.mktemp("audit")) as found:
        yield found


async def test_face_admin_actions_are_logged_with_their_admin(stack: FaceStack) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    face = unique("carol")
    assert (await stack.register(face, "train/obama/obama.jpg", name="Carol")).status_code == 201
    assert (await stack.register(face, "train/obama/obama2.jpg",
                                 method="PUT")).status_code == 200
    changed = await stack.http.patch(f"/api/face/{face}", json={"threshold": 0.5},
                                     headers=stack.auth)
    assert changed.status_code == 200
    assert (await stack.find("test/obama1.jpg")).status_code == 200
    refused = await stack.register(face, "train/biden/biden.jpg")  # 409: it exists
    assert refused.status_code == 409
    deleted = await stack.http.delete(f"/api/face/{face}", headers=stack.auth)
    assert deleted.status_code == 200

    async with Bus(stack.backend.bus("bridge"), role="bridge") as bus:
        log = await bus.request(AUTH_AUDIT, AuditRequest(token=stack.token, limit=8))
    newest_first = [(e.action, e.target) for e in log.entries]
    assert newest_first[:5] == [("face.delete", face), ("face.find", ""),
                                ("face.change", face), ("face.add_photo", face),
                                ("face.register", face)], "a refused action is no entry"
    # The stack's own start: the first admin registered itself over HTTP, then logged in.
    assert newest_first[5:7] == [("admin.login", stack.admin), ("admin.register", stack.admin)]
    entries = log.entries
    assert {e.actor for e in entries} == {stack.admin} and {e.source for e in entries} == {"api"}
    assert entries[0].detail == {"descriptors": 2}
    assert entries[1].detail["found"][0] == face  # whom the photo named
    assert entries[2].detail == {"threshold": 0.5}
    assert entries[4].detail == {"name": "Carol", "descriptors": 1}
    assert entries[6].detail == {"first": True}
    times = [e.at for e in entries]
    assert times == sorted(times, reverse=True) and times[4] >= started
    assert log.total >= 7


async def test_only_an_admin_reads_it_and_nobody_writes_for_another(
    stack: FaceStack, http_user_token: str,
) -> None:
    async with Bus(stack.backend.bus("bridge"), role="bridge") as bus:
        for token in (http_user_token, "not-a-token"):
            with pytest.raises(ServiceError) as caught:
                await bus.request(AUTH_AUDIT, AuditRequest(token=token))
            assert caught.value.code == AuthError.TOKEN_INVALID
            with pytest.raises(ServiceError) as caught:
                await bus.request(AUTH_AUDIT_RECORD, AuditRecordRequest(
                    action=AuditAction.FACE_DELETE, target="x", token=token))
            assert caught.value.code == AuthError.TOKEN_INVALID
        with pytest.raises(ServiceError) as caught:
            await bus.request_raw(AUTH_AUDIT, {})
        assert (caught.value.code, caught.value.field) == ("invalid", "token")
        log = await bus.request(AUTH_AUDIT, AuditRequest(token=stack.token))
        assert all(e.target != "x" for e in log.entries)
    # Mirrors never reach the log at all (broker/access.py; Mosquitto: its ACL file).
    for operation in (AUTH_AUDIT, AUTH_AUDIT_RECORD):
        assert not mirror_may("hall", "hall", operation.template, Access.PUBLISH)


@pytest.fixture
async def http_user_token(stack: FaceStack) -> str:
    """A user's login token (of the stack's auth): no admin's."""
    name = unique()
    await stack.http.post("/register/user", data={"username": name, "password": "pw-123",
                                                  "email": f"{name}@example.com"})
    login = await stack.http.post("/login", data={"username": name, "password": "pw-123"})
    token: str = login.json()["token"]
    return token
