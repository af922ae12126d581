"""``GET /admin/events``: the admin page's server-sent events (``text/event-stream``).

Each change the bridge hears (bridge/fleet.py) goes out as one event whose data is JSON
``{"id": row element id, "html": the row}``, rendered by the same macros as the page
(``mirror``, ``service`` and ``recognition`` events), so the page's script only swaps rows in.
``reload`` tells the page to load itself again: it fell behind, or the bridge is stopping.

Only a logged-in admin opens a stream (401 otherwise). The session is checked again with
auth at every keep-alive (:data:`KEEP_ALIVE` seconds), so a stream ends soon after its admin
logs out or the token expires. A closed page lets go of its queue at once: Starlette cancels
the stream when the client disconnects, and the queue goes with the ``listen`` context.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bridge import admin_session
from bridge.admin_page import row_id, templates, view_of
from bridge.fleet import Change, MirrorSeen, ServiceSeen
from bridge.replies import HttpFail
from schemas.recognitions import Recognition

KEEP_ALIVE = 15.0  # seconds between comments that keep proxies from closing an idle stream
RETRY_MS = 2000  # how long a browser waits before reconnecting a dropped stream

def _row(kind: str, change: object) -> str:
    """The ``{kind}_row`` macro of rows.html, as the page renders it."""
    macro = getattr(templates.env.get_template("admin/rows.html").module, f"{kind}_row")
    return str(macro(change))


def event(change: Change) -> str:
    """One change as a server-sent event."""
    if change is None:
        return "event: reload\ndata: {}\n\n"
    key: object
    if isinstance(change, MirrorSeen):
        kind, key = "mirror", change.mirror_id
    elif isinstance(change, ServiceSeen):
        kind, key = "service", change.service
    else:
        assert isinstance(change, Recognition)
        kind, key = "recognition", change.id
    data = json.dumps({"id": row_id(kind, key), "html": _row(kind, change)})
    return f"event: {kind}\ndata: {data}\n\n"  # json.dumps leaves no newline inside


async def events(request: Request) -> Response:
    admin = await admin_session.required(request)
    view = view_of(request)

    async def stream() -> AsyncIterator[str]:
        with view.listen() as queue:
            yield f"retry: {RETRY_MS}\n: logged in as {admin.username}\n\n"
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), KEEP_ALIVE)
                except TimeoutError:
                    try:
                        still = await admin_session.session(request)
                    except HttpFail:
                        still = admin  # auth is away: keep the stream, check next time
                    if still is None:
                        yield event(None)  # the page reloads and finds the login page
                        return
                    yield ": keep-alive\n\n"
                    continue
                yield event(change)
                if change is None:
                    return

    return StreamingResponse(stream(), media_type="text/event-stream", headers={
        "cache-control": "no-store", "x-accel-buffering": "no"})


routes = [Route("/admin/events", events, methods=["GET"], name="admin_events")]
