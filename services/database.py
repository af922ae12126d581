"""Opening a service's own database: a tortoise context with its migrations applied.

Shared plumbing, not a service: each service passes its own URL, app label and modules, and
owns its tables alone. ``sqlite://path`` files get their directory created;
``postgres://user@host:port/db`` goes through asyncpg.

A database that cannot be used stops the service with one :class:`DatabaseError` naming it,
and is not written to. tortoise 1.1 does not manage that alone: when its first connection fails
(``PRAGMA journal_mode`` on a damaged file) it keeps its connection lock, and its migration
recorder takes the failure for "no migrations applied", so the next statement waits for the
lock forever. So a SQLite file is first checked byte by byte (:func:`check_sqlite_file`), and
the connection is opened explicitly, outside tortoise's lock, before migrating.

A server that goes away later (PostgreSQL killed, restarting, out of reach) fails the queries
meanwhile; :func:`server_away` tells those failures apart, so a service answers them
``unavailable`` (HTTP 503: try again) instead of ``internal``. asyncpg's pool connects again by
itself once the server is back: nothing needs restarting.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import struct
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
from tortoise.context import TortoiseContext
from tortoise.exceptions import BaseORMException
from tortoise.migrations.executor import MigrationExecutor

from schemas.errors import DatabaseError

log = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_HEADER = 100
# What opening or migrating raises when the database is unusable; tortoise wraps the drivers'
# errors in its own, except OSError (the server is unreachable) and SQLite's DatabaseError on
# connecting.
_UNUSABLE = (sqlite3.Error, BaseORMException, OSError)


# asyncpg's errors for a server that is gone or not (yet) taking connections: the connection
# broke or was refused, the server is starting, recovering or shutting down.
_SERVER_GONE = (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
                asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)


def server_away(exc: Exception) -> str | None:
    """Why ``exc``, raised by a query, means the database server cannot be reached right now;
    None for any other error (a bug, bad data). A refused or reset socket counts only when it
    comes from asyncpg's own connecting: elsewhere it is somebody else's server."""
    if isinstance(exc, _SERVER_GONE):
        return f"its database server is unavailable ({exc})"
    if isinstance(exc, ConnectionError) and any(
        frame.f_globals.get("__name__", "").startswith("asyncpg.")
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    ):
        return f"its database server cannot be reached ({exc})"
    return None


def connection_name(db_url: str, app: str) -> str:
    # tortoise caches prepared INSERTs per (connection name, table): naming the connection after
    # the dialect keeps a process that opens one app on SQLite and then PostgreSQL correct.
    return f"{app}_{db_url.split(':', 1)[0]}"


def tortoise_config(db_url: str, app: str, models: str, migrations: str) -> dict[str, Any]:
    name = connection_name(db_url, app)
    return {
        "connections": {name: db_url},
        "apps": {
            app: {"models": [models], "default_connection": name, "migrations": migrations}
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _sqlite_path(db_url: str) -> Path | None:
    if db_url.startswith("sqlite://") and ":memory:" not in db_url:
        return Path(db_url.removeprefix("sqlite://").split("?")[0])
    return None


def check_sqlite_file(path: Path) -> None:
    """Refuse a file at ``path`` that is not a whole SQLite database, reading its header only.

    No file is a new database. A 0-byte file is refused, not taken for a new one: a database
    that was emptied would otherwise start without its data (a vision service with no faces)
    and be written over. A header that is not SQLite's, a page size that is not a power of two
    from 512 to 65536, or a file shorter than the pages its header counts is damage. (With a
    non-empty ``-wal`` file beside it the size is not compared: SQLite completes an interrupted
    checkpoint from it when it opens the file.)
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if not path.is_file():
        raise DatabaseError(f"{path} is not a file")
    if size == 0:
        raise DatabaseError(
            f"{path} is empty (0 bytes), not a database; if it held data, restore it from a "
            "backup, else delete it to start with a new one"
        )
    with path.open("rb") as handle:
        header = handle.read(_SQLITE_HEADER)
    if not header.startswith(SQLITE_MAGIC):
        raise DatabaseError(f"{path} is not an SQLite database (it starts {header[:16]!r})")
    if len(header) < _SQLITE_HEADER:
        raise DatabaseError(f"{path} is truncated: {size} bytes, shorter than its header")
    (page_size,) = struct.unpack_from(">H", header, 16)
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise DatabaseError(f"{path} has a damaged header (page size {page_size})")
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        return
    changes, pages = struct.unpack_from(">II", header, 24)
    (valid_for,) = struct.unpack_from(">I", header, 92)
    counted = pages * page_size if pages and changes == valid_for else None
    if counted is not None and size < counted:
        raise DatabaseError(
            f"{path} is truncated: its header counts {pages} pages of {page_size} bytes "
            f"({counted} bytes), the file has {size}"
        )
    if size % page_size:
        raise DatabaseError(
            f"{path} is truncated: {size} bytes is not a whole number of {page_size}-byte pages"
        )


@contextlib.asynccontextmanager
async def open_database(
    db_url: str, app: str, models: str, migrations: str
) -> AsyncIterator[TortoiseContext]:
    """Yield an initialised tortoise context for one app, migrated to its latest migration.

    Tasks started inside the ``async with`` see this context (it is a context variable), so one
    process can hold several services, each on its own database.
    """
    where = db_url.split("@")[-1]  # no credentials in logs and errors
    path = _sqlite_path(db_url)
    if path is not None:
        check_sqlite_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    config = tortoise_config(db_url, app, models, migrations)
    async with TortoiseContext() as ctx:
        try:
            await ctx.init(config=config)
            client = ctx.db(connection_name(db_url, app))
            await client.create_connection(with_db=True)
            await MigrationExecutor(client, config["apps"]).migrate()
        except _UNUSABLE as exc:
            log.debug("opening %s failed", where, exc_info=exc)
            raise DatabaseError(f"the {app} database {where} cannot be used: {exc}") from exc
        log.info("%s database ready at %s", app, where)
        yield ctx
