"""Serving an ASGI app with uvicorn inside a running event loop, as an async context manager."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG


@contextlib.asynccontextmanager
async def serving(
    app: ASGIApp, host: str, port: int, *, log_level: str = "warning", trusted_proxies: str = "",
    own_logging: bool = True,
) -> AsyncIterator[uvicorn.Server]:
    """Listen on ``host:port`` until the context exits; the app's lifespan runs inside.

    ``trusted_proxies`` (``MIRRORHUB_TRUSTED_PROXIES``: addresses or networks, comma-separated,
    ``*`` for any) are the peers whose ``X-Forwarded-For`` and ``X-Forwarded-Proto`` uvicorn
    believes; with none, the client is always the TCP peer (uvicorn's own default would trust
    127.0.0.1, so any local client could claim any address). ``own_logging`` False leaves
    uvicorn's loggers to the process's handlers (JSON logs) instead of its own formatters.

    An app whose ``state.on_stop`` is a function hears that the server stops before uvicorn
    waits for the requests still running: responses that never end by themselves (the admin
    page's server-sent events, bridge/admin_events.py) end then, else uvicorn would wait for
    them for ever."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            log_config=LOGGING_CONFIG if own_logging else None,
                            proxy_headers=bool(trusted_proxies),
                            forwarded_allow_ips=trusted_proxies or None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # re-raise why it stopped
            raise RuntimeError(f"uvicorn stopped before serving on {host}:{port}")
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        on_stop = getattr(getattr(app, "state", None), "on_stop", None)
        if callable(on_stop):
            on_stop()
        await task
