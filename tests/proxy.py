"""A TCP proxy of the test's own between a client and a broker, to break the connection on cue.

::

    async with Proxy("127.0.0.1", broker_port) as proxy:   # listens on proxy.port
        ...                      # clients connect to 127.0.0.1:proxy.port
        await proxy.cut()        # every connection through it ends at once, both ways
        proxy.freeze()           # connections stay open but nothing crosses any more
        proxy.cut_after(20_000)  # cut once 20 kB more went from the clients to the broker

New connections are accepted as before after a cut (the broker "comes back" at once).
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self


class Proxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.connections = 0  # accepted so far
        self.frozen = False
        self._cut_after: int | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.cut_done = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._server is not None
        self._server.close()
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def freeze(self) -> None:
        self.frozen = True

    def cut_after(self, size: int) -> None:
        self._cut_after = size

    async def cut(self) -> None:
        """Abort every open connection through the proxy (no FIN, no goodbye: a RST)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await asyncio.sleep(0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for task in (self._pipe(reader, up_writer, upstream=True),
                     self._pipe(up_reader, writer, upstream=False)):
            started = asyncio.create_task(task)
            self._tasks.add(started)
            started.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    upstream: bool) -> None:
        try:
            while data := await reader.read(65536):
                if self.frozen:
                    continue  # swallowed: the peer hears nothing, as from a hung broker
                if upstream and self._cut_after is not None:
                    if len(data) >= self._cut_after:
                        writer.write(data[:self._cut_after])
                        self._cut_after = None
                        await self.cut()
                        self.cut_done.set()
                        return
                    self._cut_after -= len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
            self._writers.discard(writer)
