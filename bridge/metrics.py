"""``GET /metrics`` and the counting of every HTTP request the bridge answers.

:class:`HttpMetrics` wraps the whole app: each request is counted once, labelled by its route's
path template (``/api/face/{id}``, never the path asked for, which would grow a series per
subject) or ``unmatched``, its method and its status (a crash counts as 500), and timed.

Who may read ``/metrics``: anybody who can reach the bridge while ``MIRRORHUB_METRICS_TOKEN`` is
unset (the embedded default listens on 127.0.0.1 only); with it set, only a request with
``Authorization: Bearer <that token>``, which is what Prometheus's ``authorization`` scrape
setting sends. A static token rather than an admin's JWT because a scraper cannot log in, and
JWTs expire. The counts say how busy which endpoint is, never who called it.
"""

from __future__ import annotations

import hmac
import time

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.replies import HttpFail
from broker.metrics import HTTP_REQUESTS, HTTP_SECONDS, labelled

UNMATCHED = "unmatched"


class HttpMetrics:
    """ASGI middleware counting and timing each HTTP request by route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless a response starts: a crash the outer handler answers
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # The route Starlette's router matched, which it leaves in the scope (a 405's
            # route counts as its route); none for a path no route has.
            endpoint = str(getattr(scope.get("route"), "path", UNMATCHED))
            method = scope["method"]
            labelled(HTTP_REQUESTS, method, endpoint, str(status)).inc()
            labelled(HTTP_SECONDS, method, endpoint).observe(time.perf_counter() - started)


async def metrics(request: Request) -> Response:
    """The process's metrics in Prometheus's text format (see the module docstring for who)."""
    wanted: str | None = getattr(request.state, "metrics_token", None)
    if wanted:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 wanted.encode()):
            raise HttpFail("metrics", "send Authorization: Bearer <MIRRORHUB_METRICS_TOKEN>",
                           401)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"], name="metrics")]
