"""Opening a service's own database: a tortoise context with its migrations applied.

Shared plumbing, not a service: each service passes its own URL, app label and modules, and
owns its tables alone. ``sqlite://path`` files get their directory created;
``postgres://user@host:port/db`` goes through asyncpg.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tortoise.context import TortoiseContext
from tortoise.migrations.executor import MigrationExecutor

log = logging.getLogger(__name__)


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


def _prepare_sqlite(db_url: str) -> None:
    if db_url.startswith("sqlite://") and ":memory:" not in db_url:
        Path(db_url.removeprefix("sqlite://").split("?")[0]).parent.mkdir(
            parents=True, exist_ok=True
        )


@contextlib.asynccontextmanager
async def open_database(
    db_url: str, app: str, models: str, migrations: str
) -> AsyncIterator[TortoiseContext]:
    """Yield an initialised tortoise context for one app, migrated to its latest migration.

    Tasks started inside the ``async with`` see this context (it is a context variable), so one
    process can hold several services, each on its own database.
    """
    _prepare_sqlite(db_url)
    config = tortoise_config(db_url, app, models, migrations)
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        executor = MigrationExecutor(ctx.db(connection_name(db_url, app)), config["apps"])
        await executor.migrate()
        log.info("%s database ready at %s", app, db_url.split("@")[-1])
        yield ctx
