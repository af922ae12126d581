"""A private auth service and bridge, for tests that change the auth service's settings (short
throttling windows, a database to break) without disturbing the session's."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from bridge.app import create_app
from bridge.server import serving
from services.auth.accounts import Accounts
from services.auth.config import AuthSettings
from services.auth.service import run_auth
from tests.conftest import Backend, auth_settings, create_database, drop_database, isolated
from tests.support import free_port


@dataclass(frozen=True)
class Stack:
    http: httpx.AsyncClient
    accounts: Accounts
    backend: Backend  # its own topic namespace
    settings: AuthSettings


@contextlib.asynccontextmanager
async def bridge_at(
    backend: Backend, trusted_proxies: str = "", **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A bridge of ``backend`` on a free port (``options`` for :func:`create_app`), and a
    client of it."""
    port = free_port()
    async with serving(create_app(backend.bus("bridge"), **options), "127.0.0.1", port,
                       trusted_proxies=trusted_proxies), httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=15
    ) as http:
        yield http


@contextlib.asynccontextmanager
async def private_stack(
    backend: Backend, data_dir: Path, *, database: str | None = None,
    trusted_proxies: str = "", **changes: Any,
) -> AsyncIterator[Stack]:
    """An auth service with ``changes`` to the test settings, on ``database`` (a fresh one,
    dropped afterwards, when None), and a bridge in front of it, under a namespace of their
    own."""
    scoped = isolated(backend)
    url = database or await create_database(backend, "private")
    settings = replace(auth_settings(data_dir, url, None), **changes)
    try:
        async with (
            run_auth(scoped.bus("auth"), settings) as accounts,
            bridge_at(scoped, trusted_proxies) as http,
        ):
            yield Stack(http, accounts, scoped, settings)
    finally:
        if database is None:
            await drop_database(url)
