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
from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.replies import HttpFail
from broker.metrics import HTTP_REQUESTS, HTTP_SECONDS

UNMATCHED = "unmatched"


def _path_of(route: BaseRoute) -> str:
    return str(getattr(route, "path", UNMATCHED))


class HttpMetrics:
    """ASGI middleware counting and timing each HTTP request by route template and status."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = tuple(routes)

    def _endpoint(self, scope: Scope) -> str:
        # As the router will match it (a 405's route counts as its route).
        partial = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return _path_of(route)
            if match is Match.PARTIAL and partial is None:
                partial = _path_of(route)
        return partial or UNMATCHED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint, method = self._endpoint(scope), scope["method"]
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
            HTTP_REQUESTS.labels(method, endpoint, str(status)).inc()
            HTTP_SECONDS.labels(method, endpoint).observe(time.perf_counter() - started)


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
