"""Tombstones of deleted accounts over MQTT: written with the deletion, numbered without gaps in
the order deletions commit (concurrent ones too), served in order by svc/auth/deletions, and
purged after the retention. Each test has an auth service and database of its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.client import Bus
from schemas.auth import (
    AUTH_DELETE_USER,
    AUTH_DELETIONS,
    AUTH_LOGIN,
    AUTH_REGISTER,
    AuthError,
    DeleteUserRequest,
    DeletionsRequest,
    LoginRequest,
    RegisterRequest,
    UserDeleted,
)
from schemas.envelope import ErrorCode
from schemas.errors import ServiceError
from services.auth.models import Deletion
from services.auth.service import run_auth
from tests.conftest import Backend, auth_settings, create_database, drop_database, isolated
from tests.support import overhear, unique


@contextlib.asynccontextmanager
async def auth(backend: Backend, tmp_path: Path, retention_days: int = 30) -> AsyncIterator[Bus]:
    """A fresh auth service (its database in this task's context) and a bus to call it."""
    url = await create_database(backend, "deletions")
    scoped = isolated(backend)
    try:
        async with (
            run_auth(scoped.bus("auth"), replace(auth_settings(tmp_path, url, None),
                                                 deletion_retention_days=retention_days)),
            Bus(scoped.bus("bridge"), role="bridge") as bus,
        ):
            yield bus
    finally:
        await drop_database(url)


async def registered(bus: Bus) -> tuple[str, str]:
    """A new account: its name and a token of it."""
    name = unique()
    await bus.request(AUTH_REGISTER, RegisterRequest(username=name, password="pw"))
    login = await bus.request(AUTH_LOGIN, LoginRequest(username=name, password="pw"))
    return name, login.token


async def test_each_deletion_leaves_a_tombstone_served_in_order(
    backend: Backend, tmp_path: Path
) -> None:
    async with auth(backend, tmp_path) as bus:
        heard = await overhear(bus, "events/auth/user_deleted")
        empty = await bus.request(AUTH_DELETIONS, DeletionsRequest())
        assert (empty.deletions, empty.last_seq) == ([], 0)
        names = []
        for _ in range(3):
            name, token = await registered(bus)
            before = datetime.now(UTC)
            await bus.request(AUTH_DELETE_USER, DeleteUserRequest(token=token))
            names.append(name)
            event = UserDeleted.model_validate_json((await asyncio.wait_for(heard.get(), 5))
                                                    .payload)
            assert event.username == name and event.seq == len(names)
            assert before - timedelta(seconds=1) <= event.deleted_at <= datetime.now(UTC)

        listed = await bus.request(AUTH_DELETIONS, DeletionsRequest())
        assert [(d.seq, d.username) for d in listed.deletions] == [(1, names[0]), (2, names[1]),
                                                                   (3, names[2])]
        assert listed.last_seq == 3
        assert len({d.user_id for d in listed.deletions}) == 3
        assert listed.deletions[2] == event  # the event is the tombstone
        page = await bus.request(AUTH_DELETIONS, DeletionsRequest(after=1, limit=1))
        assert [d.username for d in page.deletions] == [names[1]] and page.last_seq == 3
        done = await bus.request(AUTH_DELETIONS, DeletionsRequest(after=3))
        assert (done.deletions, done.last_seq) == ([], 3)


async def test_concurrent_deletions_are_numbered_without_gaps(
    backend: Backend, tmp_path: Path
) -> None:
    async with auth(backend, tmp_path) as bus:
        accounts = [await registered(bus) for _ in range(12)]
        await asyncio.gather(*(bus.request(AUTH_DELETE_USER, DeleteUserRequest(token=token))
                               for _, token in accounts))
        listed = await bus.request(AUTH_DELETIONS, DeletionsRequest())
        assert [d.seq for d in listed.deletions] == list(range(1, 13))
        assert {d.username for d in listed.deletions} == {name for name, _ in accounts}
        # In commit order: each later tombstone was written no earlier than the one before.
        times = [d.deleted_at for d in listed.deletions]
        assert times == sorted(times)


async def test_one_tombstone_per_account_however_often_it_is_deleted(
    backend: Backend, tmp_path: Path
) -> None:
    async with auth(backend, tmp_path) as bus:
        outcomes = []
        for _ in range(4):
            name, token = await registered(bus)
            other = (await bus.request(AUTH_LOGIN, LoginRequest(username=name,
                                                                password="pw"))).token
            # Two sessions of the account delete it at once: one deletes, one finds it gone.
            outcomes += await asyncio.gather(
                *(bus.request(AUTH_DELETE_USER, DeleteUserRequest(token=t))
                  for t in (token, other)), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(failures) == 4
        assert {f.code for f in failures if isinstance(f, ServiceError)} <= {
            AuthError.USER_NOT_FOUND, AuthError.TOKEN_INVALID}
        listed = await bus.request(AUTH_DELETIONS, DeletionsRequest())
        assert [d.seq for d in listed.deletions] == [1, 2, 3, 4] and listed.last_seq == 4


async def test_tombstones_older_than_the_retention_are_purged(
    backend: Backend, tmp_path: Path
) -> None:
    async with auth(backend, tmp_path, retention_days=7) as bus:
        for _ in range(2):
            _, token = await registered(bus)
            await bus.request(AUTH_DELETE_USER, DeleteUserRequest(token=token))
        # The first deletion was made eight days ago.
        await Deletion.filter(seq=1).update(deleted_at=datetime.now(UTC) - timedelta(days=8))
        _, token = await registered(bus)
        await bus.request(AUTH_DELETE_USER, DeleteUserRequest(token=token))
        listed = await bus.request(AUTH_DELETIONS, DeletionsRequest())
        # A caller that had applied nothing sees that seq 1 is gone: the list starts at 2.
        assert ([d.seq for d in listed.deletions], listed.last_seq) == ([2, 3], 3)


async def test_bad_requests_are_refused(backend: Backend, tmp_path: Path) -> None:
    async with auth(backend, tmp_path) as bus:
        for body in ({"after": -1}, {"limit": 0}, {"limit": 1001}, {"after": "3"},
                     {"after": 2**31}):
            with pytest.raises(ServiceError) as caught:
                await bus.request_raw(AUTH_DELETIONS, body)
            assert (caught.value.code, caught.value.field) == (ErrorCode.INVALID,
                                                               next(iter(body))), body
