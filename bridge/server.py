"""Serving an ASGI app with uvicorn inside a running event loop, as an async context manager."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import ASGIApp


@contextlib.asynccontextmanager
async def serving(
    app: ASGIApp, host: str, port: int, *, log_level: str = "warning"
) -> AsyncIterator[uvicorn.Server]:
    """Listen on ``host:port`` until the context exits; the app's lifespan runs inside."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
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
        await task
