"""The catch-up of services/tombstones.py against a real auth service and a real cursor table:
it applies what it missed once, says which deletions were purged before it could, starts over
when auth's numbering did, and does not apply again what a live event already did."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.client import Bus
from schemas.auth import (
    AUTH_DELETE_USER,
    AUTH_LOGIN,
    AUTH_REGISTER,
    AUTH_USER_DELETED,
    DeleteUserRequest,
    LoginRequest,
    RegisterRequest,
    UserDeleted,
    UserRenamed,
)
from services.auth.models import Deletion
from services.auth.service import run_auth
from services.database import open_database
from services.messaging.models import DeletionCursor
from services.tombstones import Cursor, Tombstones
from tests.conftest import Backend, auth_settings, create_database, drop_database, isolated
from tests.support import unique


class Recorder:
    """An :class:`~services.tombstones.AccountData` that keeps what it was told to do."""

    def __init__(self) -> None:
        self.forgotten: list[int] = []
        self.renamed: list[UserRenamed] = []

    async def forget(self, gone: UserDeleted) -> None:
        self.forgotten.append(gone.seq)

    async def rename(self, change: UserRenamed) -> None:
        self.renamed.append(change)


async def delete_someone(bus: Bus) -> None:
    name = unique()
    await bus.request(AUTH_REGISTER, RegisterRequest(username=name, password="pw"))
    token = (await bus.request(AUTH_LOGIN, LoginRequest(username=name, password="pw"))).token
    await bus.request(AUTH_DELETE_USER, DeleteUserRequest(token=token))


@contextlib.asynccontextmanager
async def catching_up(tombstones: Tombstones) -> AsyncIterator[None]:
    task = asyncio.create_task(tombstones.catch_up())
    try:
        await asyncio.wait_for(tombstones.caught_up.wait(), 10)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_catch_up_applies_once_and_says_what_it_missed(
    backend: Backend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = isolated(backend)
    auth_url = await create_database(own, "auth")
    cursor_url = await create_database(own, "cursor")
    settings = replace(auth_settings(tmp_path, auth_url, None), deletion_retention_days=7)
    try:
        async with run_auth(own.bus("auth"), settings):
            async with Bus(own.bus("test"), role="test") as bus:
                for _ in range(3):
                    await delete_someone(bus)
                # Tombstones 1 and 2 are older than the retention: the next deletion purges them.
                await Deletion.filter(seq__lte=2).update(
                    deleted_at=datetime.now(UTC) - timedelta(days=8))
                await delete_someone(bus)
            async with (
                open_database(cursor_url, "messaging", "services.messaging.models",
                              "services.messaging.migrations"),
                Bus(own.bus("messaging"), role="messaging") as bus,
            ):
                cursor, done = Cursor(DeletionCursor), Recorder()
                with caplog.at_level(logging.WARNING, logger="services.tombstones"):
                    async with catching_up(Tombstones(bus, done, cursor)):
                        assert done.forgotten == [3, 4] and await cursor.load() == 4
                assert "deletions 1 to 2 were purged" in caplog.text

                # Auth's numbering went back (a new auth database): read from the start.
                await cursor.rewind(10)
                again = Recorder()
                caplog.clear()
                with caplog.at_level(logging.WARNING, logger="services.tombstones"):
                    async with catching_up(Tombstones(bus, again, cursor)):
                        assert again.forgotten == [3, 4] and await cursor.load() == 4
                assert "starting over" in caplog.text

                # A live event is applied at once; the catch-up it sets off moves the cursor
                # without applying it a second time.
                live = Recorder()
                tombstones = Tombstones(bus, live, cursor)
                await bus.subscribe(AUTH_USER_DELETED, tombstones.on_deleted)
                async with catching_up(tombstones):
                    assert live.forgotten == []
                    tombstones.caught_up.clear()
                    async with Bus(own.bus("bridge"), role="bridge") as caller:
                        await delete_someone(caller)
                    await asyncio.wait_for(tombstones.caught_up.wait(), 5)
                    for _ in range(50):
                        if await cursor.load() == 5:
                            break
                        await asyncio.sleep(0.02)
                    assert live.forgotten == [5] and await cursor.load() == 5
    finally:
        await drop_database(auth_url)
        await drop_database(cursor_url)
