"""Every HTTP request gets a request id (broker/tracing.py): the client's ``X-Request-ID`` when
it is a usable one (up to 128 letters, digits and ``._:@+=-``), else a new one. It is the
current request id while the request is answered, so each MQTT call made for it carries it to
the services' log lines, and the reply says it back in ``X-Request-ID``. An unusable header is
replaced, not refused: the id only labels log lines."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.tracing import REQUEST_ID, new_request_id, usable

HEADER = "x-request-id"


class RequestIds:
    """ASGI middleware giving each HTTP request its request id (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value.decode("latin-1") for name, value in scope["headers"]
                      if name == HEADER.encode()), None)
        rid = usable(given) or new_request_id()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        # Set, not reset afterwards: uvicorn runs each request in a task (a context) of its
        # own, and the crash handler, outside this middleware, logs with the id still set.
        REQUEST_ID.set(rid)
        await self.app(scope, receive, sending)
