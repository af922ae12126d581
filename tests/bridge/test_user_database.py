"""Seed 003's ``500 Internal server error mybe database problem``, for real: the auth database
becomes unusable under a running auth service (PostgreSQL: the database stops taking
connections and its sessions are ended; SQLite, which keeps a file it has open usable whatever
happens to the file: another connection takes the users' table away, as a foreign or damaged
schema would). Auth answers ``internal`` and keeps running; once the database is back, it
serves again without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import asyncpg
import httpx

from tests.bridge.stack import private_stack
from tests.conftest import Backend, create_database, drop_database
from tests.support import POSTGRES_ADMIN_DSN, unique

BROKEN = {"message": "Internal server error mybe database problem"}


def fields() -> dict[str, str]:
    return {"username": unique(), "password": "pw", "first_name": "A", "last_name": "B"}


class Outage:
    """Takes one auth database away and gives it back."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _sqlite(self, statement: str) -> None:
        with contextlib.closing(sqlite3.connect(self.url.removeprefix("sqlite://"))) as db:
            db.execute(statement)
            db.commit()

    async def begin(self) -> None:
        if self.url.startswith("sqlite://"):
            self._sqlite("ALTER TABLE auth_user RENAME TO auth_user_away")
            return
        name = self.url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = $1", name)
        finally:
            await admin.close()

    async def end(self) -> None:
        if self.url.startswith("sqlite://"):
            self._sqlite("ALTER TABLE auth_user_away RENAME TO auth_user")
            return
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await admin.execute(
                f'ALTER DATABASE "{self.url.rsplit("/", 1)[1]}" ALLOW_CONNECTIONS true')
        finally:
            await admin.close()


async def until_served(http: httpx.AsyncClient) -> httpx.Response:
    for _ in range(50):
        reply = await http.post("/api/register", json=fields())
        if reply.status_code != 500:
            return reply
        await asyncio.sleep(0.2)
    return reply


async def test_a_broken_database_is_the_seeds_500_and_auth_lives_on(
    backend: Backend, tmp_path: Path
) -> None:
    database = await create_database(backend, "broken")
    outage = Outage(database)
    try:
        async with private_stack(backend, tmp_path, database=database) as stack:
            made = fields()
            assert (await stack.http.post("/api/register", json=made)).status_code == 201
            await outage.begin()
            try:
                for path, body in (("/api/register", fields()),
                                   ("/api/login", {"username": made["username"],
                                                   "password": "pw"})):
                    reply = await stack.http.post(path, json=body)
                    assert (reply.status_code, reply.json()) == (500, BROKEN)
            finally:
                await outage.end()
            assert (await until_served(stack.http)).status_code == 201
            login = await stack.http.post("/api/login", json={
                "username": made["username"], "password": "pw"})
            assert login.status_code == 202
    finally:
        await drop_database(database)
