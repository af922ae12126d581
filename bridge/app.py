"""The Starlette application: route tables, one MQTT connection, JSON for every error."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from bridge import (
    admin_events,
    admin_page,
    face_admin_api,
    liveness_api,
    messaging_api,
    metrics,
    mirror_api,
    openapi,
    session_api,
    user_accounts,
    user_family,
    user_files,
    user_messages,
)
from bridge.admin_session import Refused
from bridge.fleet import FleetView
from bridge.replies import HttpFail
from bridge.request_ids import HEADER, RequestIds
from broker.client import Bus
from broker.settings import BusSettings
from broker.tracing import REQUEST_ID
from schemas.files import MAX_UPLOAD_DEFAULT

log = logging.getLogger(__name__)


async def _fail(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpFail | session_api.SessionFail | user_family.UserFail
                      | face_admin_api.FaceFail | liveness_api.LivenessFail)
    return exc.response()


def _exact(paths: frozenset[str]) -> Callable[[str], bool]:
    """Whether a path is one of ``paths``, or one of them with a trailing slash (whose 404
    answers in the family's shape too)."""
    return lambda path: path in paths or path.rstrip("/") in paths


def _seed_000(status: int, message: str) -> JSONResponse:
    return JSONResponse({"result": "fail", "type": "http", "message": message},
                        status_code=status)


# Each family's paths and the shape its 404s, 405s and 500s answer in, first match wins;
# seed 003's are exact paths (``/api/face...`` is seed 002's). Any other path answers seed 000's.
_FAMILIES: list[tuple[Callable[[str], bool], Callable[[int, str], JSONResponse]]] = [
    (face_admin_api.family, face_admin_api.answer),
    (liveness_api.family, liveness_api.answer),
    (_exact(session_api.PATHS), session_api.answer),
    (_exact(user_family.PATHS), user_family.answer),
]


def _shape(path: str) -> Callable[[int, str], JSONResponse]:
    return next((shape for belongs, shape in _FAMILIES if belongs(path)), _seed_000)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail
    path = request.url.path
    # "/home/" is not found because paths are exact ("/home" is): the 404 says so.
    if exc.status_code == 404 and path.endswith("/") and path != "/":
        message = f"{exc.detail}: paths take no trailing slash ({path.rstrip('/')})"
    response = _shape(path)(exc.status_code, message)
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(_allowed(request))
    return response


def _allowed(request: Request) -> list[str]:
    """Every method of the path Starlette refused the request on (its first route whose
    template matches), over every route of that template: Starlette's 405 names the first
    route's alone, and one path may have several (``/api/message``: GET lists, POST sends).
    Other templates matching too (``/api/face/{id}`` for ``/api/face/find``) are other paths."""
    routes = [route for route in request.app.routes if isinstance(route, Route)]
    template = next((route.path for route in routes
                     if route.matches(request.scope)[0] != Match.NONE), None)
    return sorted({method for route in routes if route.path == template
                   for method in route.methods or ()})


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("bridge failed on %s %s", request.method, request.url.path, exc_info=exc)
    response = _shape(request.url.path)(500, "internal error")
    # Answered outside the middleware that labels replies (Starlette's outermost one).
    rid = REQUEST_ID.get()
    if rid is not None:
        response.headers[HEADER] = rid
    return response


def create_app(
    bus_settings: BusSettings, *, require_token: bool = False, cookie_secure: bool = False,
    max_upload: int = MAX_UPLOAD_DEFAULT, metrics_token: str | None = None,
) -> Starlette:
    """The bridge app; its MQTT connection opens and closes with the app's lifespan.

    ``require_token``: the messaging endpoints want a bearer token of the user they act for
    (without it, a token is checked when one is sent, as the documented API has none).
    ``cookie_secure``: the session API's login cookie is ``Secure`` (behind HTTPS).
    ``max_upload``: the largest file ``/api/upload`` takes, in bytes.
    ``metrics_token``: ``GET /metrics`` wants it as a bearer token (None: open; bridge/metrics.py).
    The admin page (``/admin``) follows the fleet from the start (bridge/fleet.py).
    """
    fleet = FleetView()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        async with Bus(bus_settings, role="bridge") as bus:
            await fleet.follow(bus)
            yield {"bus": bus, "require_token": require_token, "cookie_secure": cookie_secure,
                   "max_upload": max_upload, "fleet": fleet, "metrics_token": metrics_token}
            fleet.stop()

    routes = [*mirror_api.routes, *messaging_api.routes, *session_api.routes,
              *user_accounts.routes, *user_files.routes, *user_messages.routes,
              *face_admin_api.routes, *liveness_api.routes, *admin_page.routes,
              *admin_events.routes, *openapi.routes, *metrics.routes]
    app = Starlette(
        routes=routes,
        # Request ids outermost: the metrics middleware's time and a crash's log line have one.
        middleware=[Middleware(RequestIds), Middleware(metrics.HttpMetrics)],
        lifespan=lifespan,
        exception_handlers={HttpFail: _fail, session_api.SessionFail: _fail,
                            user_family.UserFail: _fail, face_admin_api.FaceFail: _fail,
                            liveness_api.LivenessFail: _fail, Refused: admin_page.refused,
                            HTTPException: _http_error, Exception: _crash},
    )
    # Starlette answers "/login/" with an empty 307 to "/login"; a JSON client wants JSON, and
    # a POST redirected is a POST that clients may drop. Paths are exact: a 404 that says so.
    app.router.redirect_slashes = False
    app.state.fleet = fleet  # what the admin page shows (tests look at it too)
    app.state.on_stop = fleet.stop  # bridge/server.py: open event streams end with the server
    return app
