"""The admin page at ``/admin``: log in with a face admin account, then Mirrors, Faces, Recent
recognitions and Services, server-rendered with Jinja2 (bridge/templates/admin/), kept up to
date by server-sent events (bridge/admin_events.py).

Who may do what (bridge/admin_session.py): only a logged-in admin sees a page (anybody else
is sent to ``/admin/login``) or opens the event stream (401); every POST that changes something
(log in, log out, delete a face) wants the form's CSRF token (403 without) and no foreign
``Origin``. A user's token in the cookie is no admin session. Every answer is HTML, sent with a
Content-Security-Policy that lets the page load nothing but itself (its style and script are
inline, with a nonce) and be framed by nobody.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from bridge import admin_session
from bridge.admin_session import AdminSession, Refused
from bridge.fleet import FleetView
from bridge.forms import BadBody, read_fields
from bridge.replies import HttpFail, call, client_address
from schemas.admins import AUTH_ADMIN_LOGIN, AUTH_ADMIN_LOGOUT
from schemas.auth import AuthError
from schemas.faces import VISION_DELETE_SUBJECT, VISION_SUBJECTS, VISION_THUMBNAIL
from schemas.recognitions import VISION_RECOGNITIONS
from schemas.vision import VisionError

FORM_LIMIT = 16 * 1024
FACES_PAGE = 100
RECOGNITIONS_SHOWN = 100
_NOT_FOUND: dict[str, int] = {VisionError.SUBJECT_NOT_FOUND: 404, VisionError.NO_CROP: 404}

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def row_id(kind: str, key: object) -> str:
    """A row's element id: the key in hex, so any mirror id or face name makes a valid one."""
    return f"{kind}-{str(key).encode().hex()}"


templates.env.globals["row_id"] = row_id


def view_of(request: Request) -> FleetView:
    view: FleetView = request.state.fleet
    return view


def _policy(nonce: str) -> str:
    return (f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
            "frame-ancestors 'none'")


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    nonce = secrets.token_urlsafe(16)
    response = templates.TemplateResponse(
        request, f"admin/{name}", {"nonce": nonce, "here": request.url.path, **context},
        status_code=status)
    response.headers["content-security-policy"] = _policy(nonce)
    response.headers["cache-control"] = "no-store"
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["referrer-policy"] = "same-origin"
    return response


def _to_login() -> Response:
    return RedirectResponse("/admin/login", status_code=303)


async def _form(request: Request) -> dict[str, Any]:
    admin_session.same_origin(request)
    try:
        return await read_fields(request, FORM_LIMIT)
    except BadBody as exc:
        raise Refused(exc.status, exc.message) from exc


def _failed(exc: HttpFail) -> str:
    return f"{exc.message} (the service answered {exc.status})"


async def login_page(request: Request, error: str = "", status: int = 200,
                     username: str = "") -> Response:
    csrf = admin_session.login_csrf(request)
    response = render(request, "login.html", status, csrf=csrf, error=error, username=username)
    admin_session.set_cookie(request, response, admin_session.LOGIN_CSRF, csrf,
                             admin_session.LOGIN_CSRF_AGE)
    return response


async def login(request: Request) -> Response:
    if request.method == "GET":
        if await admin_session.session(request) is not None:
            return RedirectResponse("/admin", status_code=303)
        return await login_page(request)
    fields = await _form(request)
    admin_session.check_csrf(fields.get("csrf"),
                             request.cookies.get(admin_session.LOGIN_CSRF, ""))
    username = fields.get("username")
    shown = username if isinstance(username, str) else ""
    try:
        reply = await call(request, "admin", AUTH_ADMIN_LOGIN, {
            "username": username, "password": fields.get("password"),
            "address": client_address(request)})
    except HttpFail as exc:
        if exc.code == AuthError.LOGIN_FAILED:
            return await login_page(request, "Wrong admin name or password.", 401, shown)
        status = exc.status if exc.status >= 400 else 500
        response = await login_page(request, exc.message, status, shown)
        if exc.retry_after is not None:
            response.headers["retry-after"] = str(exc.retry_after)
        return response
    response = RedirectResponse("/admin", status_code=303)
    admin_session.set_cookie(request, response, admin_session.SESSION, reply.token,
                             reply.expires_in)
    admin_session.clear_cookie(request, response, admin_session.LOGIN_CSRF)
    return response


async def logout(request: Request) -> Response:
    """Revokes the session's token with auth (it stops working on every bridge), then clears
    the cookie. Without a session there is nothing to log out of."""
    admin = await admin_session.required(request)
    fields = await _form(request)
    admin_session.check_csrf(fields.get("csrf"), admin.csrf)
    await call(request, "admin", AUTH_ADMIN_LOGOUT, {"token": admin.token})
    response = RedirectResponse("/admin/login", status_code=303)
    admin_session.clear_cookie(request, response, admin_session.SESSION)
    return response


Page = Callable[[Request, AdminSession], Awaitable[Response]]


def page(handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """A page only a logged-in admin sees: anybody else is sent to the login page."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            admin = await admin_session.session(request)
        except HttpFail as exc:  # auth is away: say so, rather than send to the login page
            return render(request, "refused.html", exc.status,
                          reason=f"The session cannot be checked now: {_failed(exc)}")
        return _to_login() if admin is None else await handler(request, admin)

    return endpoint


@page
async def mirrors(request: Request, admin: AdminSession) -> Response:
    shown = sorted(view_of(request).mirrors.values(), key=lambda m: m.mirror_id)
    return render(request, "mirrors.html", admin=admin, mirrors=shown, live=True)


@page
async def services(request: Request, admin: AdminSession) -> Response:
    shown = sorted(view_of(request).services.values(), key=lambda s: s.service)
    return render(request, "services.html", admin=admin, services=shown, live=True)


@page
async def recognitions(request: Request, admin: AdminSession) -> Response:
    retention = "MIRRORHUB_RETENTION_DAYS days (30 unless set)"
    try:
        reply = await call(request, "admin", VISION_RECOGNITIONS, {"limit": RECOGNITIONS_SHOWN})
    except HttpFail as exc:
        return render(request, "recognitions.html", 503, admin=admin, recognitions=[],
                      error=_failed(exc), live=True, retention=retention)
    return render(request, "recognitions.html", admin=admin, recognitions=reply.recognitions,
                  live=True, retention=retention)


@page
async def faces(request: Request, admin: AdminSession) -> Response:
    offset = request.query_params.get("offset", "0")
    offset_at = int(offset) if offset.isdigit() and len(offset) < 10 else 0
    deleted = request.query_params.get("deleted")
    flash = f"Face {deleted} deleted." if deleted else ""
    try:
        reply = await call(request, "admin", VISION_SUBJECTS,
                           {"offset": offset_at, "limit": FACES_PAGE})
    except HttpFail as exc:
        return render(request, "faces.html", 503, admin=admin, faces=[], total=0,
                      offset=0, limit=FACES_PAGE, error=_failed(exc))
    return render(request, "faces.html", admin=admin, faces=reply.subjects, total=reply.total,
                  offset=reply.offset, limit=reply.limit, flash=flash)


@page
async def thumbnail(request: Request, admin: AdminSession) -> Response:
    """A face's kept crop (only with MIRRORHUB_KEEP_FACE_CROPS=1, services/vision/crops.py)."""
    subject = request.path_params["id"]
    try:
        reply = await call(request, "admin", VISION_THUMBNAIL, {"id": subject},
                           domain_status=_NOT_FOUND)
    except HttpFail as exc:
        return render(request, "refused.html", exc.status if exc.status >= 400 else 404,
                      reason=f"No thumbnail of {subject}: {exc.message}")
    return Response(reply.jpeg, media_type="image/jpeg", headers={
        "cache-control": "private, no-store", "x-content-type-options": "nosniff",
        "content-security-policy": "default-src 'none'"})


async def delete_face(request: Request) -> Response:
    admin = await admin_session.required(request)
    fields = await _form(request)
    admin_session.check_csrf(fields.get("csrf"), admin.csrf)
    subject = request.path_params["id"]
    try:
        await call(request, "admin", VISION_DELETE_SUBJECT, {"id": subject})
    except HttpFail as exc:
        return render(request, "faces.html", exc.status if exc.status >= 400 else 404,
                      admin=admin, faces=[], total=0, offset=0, limit=FACES_PAGE,
                      error=f"Face {subject} was not deleted: {exc.message}")
    return RedirectResponse(f"/admin/faces?{urlencode({'deleted': subject})}", status_code=303)


async def refused(request: Request, exc: Exception) -> Response:
    """A :class:`Refused` request: the login page for a page without a session, else a short
    HTML answer saying why."""
    assert isinstance(exc, Refused)
    response = render(request, "refused.html", exc.status, reason=exc.reason)
    return response


routes = [
    Route("/admin/login", login, methods=["GET", "POST"], name="admin_login_page"),
    Route("/admin/logout", logout, methods=["POST"], name="admin_logout"),
    Route("/admin", mirrors, methods=["GET"], name="admin_mirrors"),
    Route("/admin/faces", faces, methods=["GET"], name="admin_faces"),
    Route("/admin/faces/{id}/delete", delete_face, methods=["POST"],
          name="admin_delete_face"),
    Route("/admin/faces/{id}/thumbnail", thumbnail, methods=["GET"], name="admin_thumbnail"),
    Route("/admin/recognitions", recognitions, methods=["GET"], name="admin_recognitions"),
    Route("/admin/services", services, methods=["GET"], name="admin_services"),
]
