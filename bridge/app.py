"""The Starlette application: route tables, one MQTT connection, JSON for every error."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge import (
    face_admin_api,
    messaging_api,
    mirror_api,
    session_api,
    user_accounts,
    user_family,
    user_files,
    user_messages,
)
from bridge.replies import HttpFail
from broker.client import Bus
from broker.settings import BusSettings
from schemas.files import MAX_UPLOAD_DEFAULT

log = logging.getLogger(__name__)


async def _fail(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpFail | session_api.SessionFail | user_family.UserFail
                      | face_admin_api.FaceFail)
    return exc.response()


def _session_family(request: Request) -> bool:
    """Whether the request is for seed 004's paths, which answer in their own shape."""
    path = request.url.path
    return path in session_api.PATHS or path.rstrip("/") in session_api.PATHS


def _user_family(request: Request) -> bool:
    """Whether the request is for seed 003's paths (exactly: ``/api/face...`` is seed 002's),
    which answer ``{"message": ...}``."""
    path = request.url.path
    return path in user_family.PATHS or path.rstrip("/") in user_family.PATHS


def _slash(detail: str, path: str) -> str:
    return f"{detail}: paths take no trailing slash ({path.rstrip('/') or '/'})"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail
    path = request.url.path
    if face_admin_api.family(path):
        if exc.status_code == 404 and path.endswith("/"):
            message = _slash(exc.detail, path)
        response = face_admin_api.answer(exc.status_code, message)
        response.headers.update(exc.headers or {})
        return response
    if _session_family(request) or _user_family(request):
        if exc.status_code == 404:  # "/home/": the exact path exists
            message = _slash(exc.detail, path)
        shape = session_api.answer if _session_family(request) else user_family.answer
        response = shape(exc.status_code, message)
        response.headers.update(exc.headers or {})
        return response
    if exc.status_code == 404 and path.endswith("/") and path != "/":
        message = _slash(exc.detail, path)
    return JSONResponse({"result": "fail", "type": "http", "message": message},
                        status_code=exc.status_code, headers=exc.headers)


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("bridge failed on %s %s", request.method, request.url.path, exc_info=exc)
    if face_admin_api.family(request.url.path):
        return face_admin_api.answer(500, "internal error")
    if _session_family(request):
        return session_api.answer(500, "internal error")
    if _user_family(request):
        return user_family.answer(500, "internal error")
    return JSONResponse({"result": "fail", "type": "http", "message": "internal error"},
                        status_code=500)


def create_app(
    bus_settings: BusSettings, *, require_token: bool = False, cookie_secure: bool = False,
    max_upload: int = MAX_UPLOAD_DEFAULT,
) -> Starlette:
    """The bridge app; its MQTT connection opens and closes with the app's lifespan.

    ``require_token``: the messaging endpoints want a bearer token of the user they act for
    (without it, a token is checked when one is sent, as the documented API has none).
    ``cookie_secure``: the session API's login cookie is ``Secure`` (behind HTTPS).
    ``max_upload``: the largest file ``/api/upload`` takes, in bytes.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        async with Bus(bus_settings, role="bridge") as bus:
            yield {"bus": bus, "require_token": require_token, "cookie_secure": cookie_secure,
                   "max_upload": max_upload}

    app = Starlette(
        routes=[*mirror_api.routes, *messaging_api.routes, *session_api.routes,
                 *user_accounts.routes, *user_files.routes, *user_messages.routes,
                 *face_admin_api.routes],
        lifespan=lifespan,
        exception_handlers={HttpFail: _fail, session_api.SessionFail: _fail,
                            user_family.UserFail: _fail, face_admin_api.FaceFail: _fail,
                            HTTPException: _http_error, Exception: _crash},
    )
    # Starlette answers "/login/" with an empty 307 to "/login"; a JSON client wants JSON, and
    # a POST redirected is a POST that clients may drop. Paths are exact: a 404 that says so.
    app.router.redirect_slashes = False
    return app
