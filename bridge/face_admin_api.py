"""Routes of the face admin API (seed 002): admin accounts (``/jwt/...``) and the enrolled faces
(``/api/face...``).

Every reply is JSON; every failure is ``{"detail": ...}`` with a 4xx (5xx when a service fails
or is away), on the family's exact paths for 404s, 405s and 500s too (bridge/app.py). Every
``/api/face...`` route wants an admin's ``Authorization: Bearer`` token from ``/jwt/login``,
checked by auth (``svc/auth/admin_verify``): a user's token is refused here as an admin's is
everywhere else. docs/http-api.md lists the choices the seed leaves open.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.forms import BadBody, Upload, read_fields
from bridge.replies import HttpFail, bearer_token, bus_of, call, client_address, retry_headers
from schemas.admins import AUTH_ADMIN_LOGIN, AUTH_ADMIN_REGISTER, AUTH_ADMIN_VERIFY
from schemas.audit import AUTH_AUDIT_RECORD, AuditAction, AuditRecordRequest
from schemas.auth import TOKEN_MAX, AuthError
from schemas.errors import BusError, ServiceError
from schemas.faces import (
    VISION_CHANGE_SUBJECT,
    VISION_DELETE_SUBJECT,
    VISION_FIND,
    VISION_NOT_ME,
    VISION_REGISTER,
    VISION_SUBJECT,
    VISION_SUBJECTS,
    SubjectInfo,
)
from schemas.topics import Operation
from schemas.vision import IMAGE_MAX_BYTES, VisionError

Rep = TypeVar("Rep", bound=BaseModel)
log = logging.getLogger(__name__)

ACCOUNT_BODY_LIMIT = 16 * 1024
IMAGE_BODY_LIMIT = IMAGE_MAX_BYTES + 64 * 1024
NO_TOKEN = "send Authorization: Bearer <token from /jwt/login>"

# The services' own codes, as this family answers them; a code nobody mapped is a 500.
_STATUS: dict[str, int] = {
    AuthError.LOGIN_FAILED: 401,
    AuthError.TOKEN_INVALID: 401,
    AuthError.ADMIN_REQUIRED: 401,
    AuthError.USER_EXISTS: 409,
    VisionError.SUBJECT_NOT_FOUND: 404,
    VisionError.SUBJECT_EXISTS: 409,
    VisionError.FACE_COUNT: 400,
    VisionError.NO_FACE: 400,
    VisionError.FACE_TOO_SMALL: 400,
    VisionError.FACE_BLURRED: 400,
    VisionError.FACE_TOO_DARK: 400,
    VisionError.EMPTY: 400,
    VisionError.NOT_AN_IMAGE: 400,
    VisionError.TRUNCATED: 400,
    VisionError.TOO_MANY_PIXELS: 400,
}


class FaceFail(Exception):
    """Answer ``{"detail": detail}`` with ``status`` (and ``Retry-After`` when throttled)."""

    def __init__(self, status: int, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        return JSONResponse({"detail": self.detail}, status_code=self.status,
                            headers=retry_headers(self.retry_after))


def answer(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


async def _ask(request: Request, operation: Operation[Any, Rep], body: dict[str, Any]) -> Rep:
    """:func:`bridge.replies.call` in this family's shape."""
    try:
        return await call(request, "face_admin", operation, body)
    except HttpFail as exc:
        status = _STATUS.get(exc.code or "", exc.status)
        raise FaceFail(status if status >= 400 else 500, exc.message, exc.retry_after) from exc


async def _fields(request: Request, limit: int) -> dict[str, Any]:
    try:
        return await read_fields(request, limit)
    except BadBody as exc:
        raise FaceFail(exc.status, exc.message) from exc


def _bearer(request: Request) -> str | None:
    """The ``Authorization: Bearer`` token, None without the header; 401 for another kind."""
    try:
        token = bearer_token(request, "face_admin", required=False)
    except HttpFail as exc:
        raise FaceFail(401, NO_TOKEN) from exc
    if token is not None and len(token) > TOKEN_MAX:
        raise FaceFail(401, NO_TOKEN)
    return token


async def _admin(request: Request) -> str:
    """The admin the request's token belongs to: 401 without one, or with anybody else's."""
    token = _bearer(request)
    if token is None:
        raise FaceFail(401, NO_TOKEN)
    try:
        reply = await _ask(request, AUTH_ADMIN_VERIFY, {"token": token})
    except FaceFail as exc:
        if exc.status == 401:
            raise FaceFail(401, f"not an admin's token: {exc.detail}") from exc
        raise
    return reply.username


async def _audit(request: Request, action: AuditAction, target: str, **detail: Any) -> None:
    """Log a face admin action, done, in auth's audit log as the token's admin's (auth checks
    the token again, so the entry cannot name anybody else). The action is done whatever
    happens here: an entry that cannot be written is an error in the bridge's log."""
    try:
        await bus_of(request).request(AUTH_AUDIT_RECORD, AuditRecordRequest(
            action=action, target=target, detail=detail, token=_bearer(request)))
    except (ServiceError, BusError) as exc:
        log.error("audit entry %s %s not written: %s", action, target, exc)


def _required(fields: dict[str, Any], *names: str) -> None:
    for name in names:
        if fields.get(name) is None or fields.get(name) == "":
            raise FaceFail(400, f"{name}: is required")


def _trimmed(value: object) -> object:
    """A form's text without surrounding whitespace (as ``/register/face`` takes names);
    anything else as it is, for the operation's validation to refuse."""
    return value.strip() if isinstance(value, str) else value


def _image(fields: dict[str, Any]) -> str:
    upload = fields.get("file")
    if not isinstance(upload, Upload):
        raise FaceFail(400, "file: is required (a JPEG or PNG file)")
    return base64.b64encode(upload.data).decode()


def _shown(info: SubjectInfo) -> dict[str, Any]:
    return info.model_dump(exclude={"thumbnail"})  # the admin page's, no part of seed 002


async def jwt_register(request: Request) -> JSONResponse:
    """Open while no admin exists; after that the request needs an admin's token."""
    token = _bearer(request)
    fields = await _fields(request, ACCOUNT_BODY_LIMIT)
    _required(fields, "username", "password")
    reply = await _ask(request, AUTH_ADMIN_REGISTER, {
        "username": fields["username"], "password": fields["password"], "token": token})
    return answer(201, f"admin {reply.username} registered")


async def jwt_login(request: Request) -> JSONResponse:
    fields = await _fields(request, ACCOUNT_BODY_LIMIT)
    _required(fields, "username", "password")
    reply = await _ask(request, AUTH_ADMIN_LOGIN, {
        "username": fields["username"], "password": fields["password"],
        "address": client_address(request)})
    return JSONResponse({"token": reply.token})


async def list_faces(request: Request) -> JSONResponse:
    """``offset`` and ``limit`` (query) page the list in ``id`` order; ``total`` counts all."""
    await _admin(request)
    query = dict(request.query_params)
    body: dict[str, Any] = {name: query[name] for name in ("offset", "limit") if name in query}
    reply = await _ask(request, VISION_SUBJECTS, body)
    return JSONResponse({"data": [_shown(info) for info in reply.subjects],
                         "total": reply.total, "offset": reply.offset, "limit": reply.limit})


async def face(request: Request) -> JSONResponse:
    """``GET``, ``DELETE`` and ``PATCH`` (``{"threshold": x}``, null for the default)."""
    await _admin(request)
    subject_id = request.path_params["id"]
    if request.method == "DELETE":
        deleted = await _ask(request, VISION_DELETE_SUBJECT, {"id": subject_id})
        await _audit(request, AuditAction.FACE_DELETE, deleted.id,
                     descriptors=deleted.descriptors)
        return answer(200, f"face {subject_id} deleted")
    if request.method == "PATCH":
        fields = await _fields(request, ACCOUNT_BODY_LIMIT)
        if "threshold" not in fields:
            raise FaceFail(400, "threshold: is required (a number, or null for the default)")
        info = await _ask(request, VISION_CHANGE_SUBJECT,
                          {"id": subject_id, "threshold": fields["threshold"]})
        await _audit(request, AuditAction.FACE_CHANGE, info.id, threshold=info.threshold)
        return JSONResponse({"detail": f"face {subject_id} changed", "data": _shown(info)})
    info = await _ask(request, VISION_SUBJECT, {"id": subject_id})
    return JSONResponse({"data": _shown(info)})


async def register(request: Request) -> JSONResponse:
    """``POST`` creates face ``id`` (409 when it exists), ``PUT`` adds a photo to it (404 when
    it does not); the photo must hold exactly one face."""
    await _admin(request)
    fields = await _fields(request, IMAGE_BODY_LIMIT)
    _required(fields, "id")
    new = request.method == "POST"
    info = await _ask(request, VISION_REGISTER, {
        "id": _trimmed(fields["id"]), "name": _trimmed(fields.get("name")) or None,
        "image": _image(fields), "new": new})
    await _audit(request, AuditAction.FACE_REGISTER if new else AuditAction.FACE_ADD_PHOTO,
                 info.id, name=info.name, descriptors=info.descriptors)
    if new:
        return JSONResponse({"detail": f"face {info.id} registered", "data": _shown(info)},
                            status_code=201)
    return JSONResponse({"detail": f"photo added to face {info.id}", "data": _shown(info)})


async def find(request: Request) -> JSONResponse:
    """``response_time`` is the bridge's, from the request read to the reply."""
    started = time.perf_counter()
    await _admin(request)
    fields = await _fields(request, IMAGE_BODY_LIMIT)
    body: dict[str, Any] = {"image": _image(fields)}
    if fields.get("limit") not in (None, ""):
        body["limit"] = fields["limit"]
    reply = await _ask(request, VISION_FIND, body)
    found = [match.model_dump() for match in reply.found]
    # Naming a person from a photo is an act on them too: logged, with whom it named.
    await _audit(request, AuditAction.FACE_FIND, "", found=[m.id for m in reply.found])
    detail = f"{len(found)} face{'s' if len(found) != 1 else ''} found"
    elapsed = (time.perf_counter() - started) * 1000
    return JSONResponse({"detail": detail, "response_time": f"{elapsed:.1f}ms", "data": found})


async def not_me(request: Request) -> JSONResponse:
    """The largest face of ``file`` is not face ``id``: kept as its negative."""
    await _admin(request)
    subject_id = request.path_params["id"]
    fields = await _fields(request, IMAGE_BODY_LIMIT)
    info = await _ask(request, VISION_NOT_ME, {"id": subject_id, "image": _image(fields)})
    await _audit(request, AuditAction.FACE_NOT_ME, info.id, negatives=info.negatives)
    return JSONResponse({"detail": f"kept as not face {subject_id}", "data": _shown(info)})


routes = [
    Route("/jwt/register", jwt_register, methods=["POST"], name="admin_register"),
    Route("/jwt/login", jwt_login, methods=["POST"], name="admin_login"),
    Route("/api/face", list_faces, methods=["GET"], name="face_list"),
    # Before /api/face/{id}: "register" and "find" are these routes for their methods.
    Route("/api/face/register", register, methods=["POST", "PUT"], name="face_register"),
    Route("/api/face/find", find, methods=["POST"], name="face_find"),
    Route("/api/face/{id}", face, methods=["GET", "DELETE", "PATCH"], name="face_one"),
    Route("/api/face/{id}/not_me", not_me, methods=["POST"], name="face_not_me"),
]


def family(path: str) -> bool:
    """Whether ``path`` is one of this family's (``/jwt/...``, ``/api/face...``), which answer
    ``{"detail": ...}`` for 404s, 405s and 500s too."""
    return (path.startswith("/jwt/") or path == "/jwt" or path == "/api/face"
            or path.startswith("/api/face/"))
