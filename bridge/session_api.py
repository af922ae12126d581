"""Routes of the session API (seed 004): accounts at the root, the login token in a cookie.

Every reply, failures included, is ``{"status_code": <the HTTP status>, "message": ...}``.
Messages are the seed's, misspellings included; docs/http-api.md lists them and the choices the
seed leaves open. The login token (a JWT of the one user store) travels in the cookie
:data:`COOKIE`: HttpOnly, SameSite=Lax, Path=/, Max-Age the token's lifetime, and Secure when
the bridge runs with ``MIRRORHUB_COOKIE_SECURE=1``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.forms import BadBody, read_fields
from bridge.replies import HttpFail, call, client_address, family_failure, retry_headers
from schemas.auth import (
    AUTH_DELETE_USER,
    AUTH_LOGIN,
    AUTH_LOGOUT,
    AUTH_LOOKUP,
    AUTH_REGISTER,
    AUTH_VERIFY,
    TOKEN_MAX,
    AuthError,
)
from schemas.envelope import ErrorCode
from schemas.names import normal_username
from schemas.topics import Operation

Rep = TypeVar("Rep", bound=BaseModel)

COOKIE = "X-LIVENESS-TOKEN"
SESSION_BODY_LIMIT = 16 * 1024
MIN_LENGTH = 5  # characters of each registration field (docs/http-api.md says how they count)

UNAUTHORIZED = "Unauthorized users"
REGISTER_REQUIRED = "Name, Username, and Password is required"
USERNAME_TAKEN = "Username already exists!"
LOGIN_REQUIRED = "Username and Password is required"
USERNAME_NOT_FOUND = "Username not found!"
PASSWORD_INCORRECT = "Password is incorrect!"
DELETE_FAILED = "Failed to delete user!"


class SessionFail(Exception):
    """Answer ``{"status_code": status, "message": message}``; ``code`` is the service's error
    code when a service answered, ``retry_after`` its ``Retry-After`` (throttled)."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        response = answer(self.status, self.message)
        response.headers.update(retry_headers(self.retry_after))
        return response


def answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status_code": status, "message": message}, status_code=status)


async def _fields(request: Request) -> dict[str, Any]:
    try:
        return await read_fields(request, SESSION_BODY_LIMIT)
    except BadBody as exc:
        raise SessionFail(exc.status, exc.message) from exc


async def _ask(
    request: Request,
    operation: Operation[Any, Rep],
    body: dict[str, Any],
    domain: dict[str, tuple[int, str]] | None = None,
) -> Rep:
    """``call`` in this family's shape: the service codes in ``domain`` get their status and
    message, other failures keep the common status (400, 503, 504...) and message."""
    try:
        return await call(request, "session", operation, body)
    except HttpFail as exc:
        raise SessionFail(*family_failure(exc, domain), exc.code, exc.retry_after) from exc


def _texts(fields: dict[str, Any], labels: dict[str, str], missing: str) -> dict[str, str]:
    """The fields named in ``labels`` as strings: absent, null or blank is ``missing`` (400),
    anything but a string is a 400 naming the field by its label."""
    values = {name: fields.get(name) for name in labels}
    if any(v is None or (isinstance(v, str) and not v.strip()) for v in values.values()):
        raise SessionFail(400, missing)
    for name, value in values.items():
        if not isinstance(value, str):
            raise SessionFail(400, f"{labels[name]} must be a string")
    return {name: str(value) for name, value in values.items()}


def _counted(name: str, value: str) -> int:
    """The characters the length rule counts: what auth stores (usernames in NFC without
    surrounding whitespace, names without surrounding whitespace), passwords as typed."""
    if name == "username":
        try:
            return len(normal_username(value))
        except ValueError:  # not a username at all: auth answers why
            return MIN_LENGTH
    return len(value) if name == "password" else len(value.strip())


def _token(request: Request, status: int) -> str:
    token = request.cookies.get(COOKIE, "").strip()
    if not token or len(token) > TOKEN_MAX:
        raise SessionFail(status, UNAUTHORIZED)
    return token


def _set_cookie(request: Request, response: JSONResponse, value: str, max_age: int) -> None:
    # Written out, not with Response.set_cookie: that one spells the attribute "SameSite=lax".
    parts = [f"{COOKIE}={value}", "HttpOnly", f"Max-Age={max_age}", "Path=/", "SameSite=Lax"]
    if max_age == 0:
        parts.append("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    if getattr(request.state, "cookie_secure", False):
        parts.append("Secure")
    response.headers.append("set-cookie", "; ".join(parts))


def _cleared(request: Request, response: JSONResponse) -> JSONResponse:
    _set_cookie(request, response, '""', 0)
    return response


async def root(request: Request) -> JSONResponse:
    return answer(200, "You found me!")


async def register(request: Request) -> JSONResponse:
    labels = {"fullname": "Name", "username": "Username", "password": "Password"}
    given = _texts(await _fields(request), labels, REGISTER_REQUIRED)
    for name, value in given.items():
        if _counted(name, value) < MIN_LENGTH:
            raise SessionFail(400, f"{labels[name]} must be at least {MIN_LENGTH} characters")
    await _ask(request, AUTH_REGISTER, given,
               {AuthError.USER_EXISTS: (400, USERNAME_TAKEN)})
    return answer(201, "Successfully created account!")


async def login(request: Request) -> JSONResponse:
    """Says whether the username exists, as the seed documents: when auth's login fails
    (which never tells why) it asks auth which names exist. The login comes first, so every
    attempt, on an unknown username too, is counted and throttled by auth."""
    given = _texts(await _fields(request), {"username": "Username", "password": "Password"},
                   LOGIN_REQUIRED)
    try:
        username = normal_username(given["username"])
    except ValueError:
        raise SessionFail(400, USERNAME_NOT_FOUND) from None
    try:
        reply = await _ask(request, AUTH_LOGIN, {
            "username": username, "password": given["password"],
            "address": client_address(request)})
    except SessionFail as exc:
        if exc.code != AuthError.LOGIN_FAILED:
            raise
        found = await _ask(request, AUTH_LOOKUP, {"usernames": [username]})
        message = PASSWORD_INCORRECT if username in found.found else USERNAME_NOT_FOUND
        raise SessionFail(400, message, exc.code) from exc
    response = answer(200, "Login successfully!")
    _set_cookie(request, response, reply.token, reply.expires_in)
    return response


async def home(request: Request) -> JSONResponse:
    denied = (401, UNAUTHORIZED)
    reply = await _ask(request, AUTH_VERIFY, {"token": _token(request, 401)},
                       {AuthError.TOKEN_INVALID: denied, ErrorCode.INVALID: denied})
    return answer(200, f"Hello {reply.fullname or reply.username}")


async def logout(request: Request) -> JSONResponse:
    """Revokes the cookie's token and clears the cookie. Without a cookie, or with one that no
    longer verifies, there is nothing to revoke: logged out all the same."""
    token = request.cookies.get(COOKIE, "").strip()
    if token and len(token) <= TOKEN_MAX:
        try:
            await _ask(request, AUTH_LOGOUT, {"token": token})
        except SessionFail as exc:
            if exc.code != AuthError.TOKEN_INVALID:
                raise
    return _cleared(request, answer(200, "Logged out"))


async def delete_user(request: Request) -> JSONResponse:
    denied, failed = (400, UNAUTHORIZED), (400, DELETE_FAILED)
    await _ask(request, AUTH_DELETE_USER, {"token": _token(request, 400)}, {
        AuthError.TOKEN_INVALID: denied, ErrorCode.INVALID: denied,
        AuthError.USER_NOT_FOUND: failed, ErrorCode.INTERNAL: failed,
    })
    return _cleared(request, answer(200, "Successfully deleted user!"))


routes = [
    Route("/", root, methods=["GET"], name="session_root"),
    Route("/home", home, methods=["GET"], name="session_home"),
    Route("/auth/register", register, methods=["POST"], name="session_register"),
    Route("/auth/login", login, methods=["POST"], name="session_login"),
    Route("/auth/logout", logout, methods=["DELETE"], name="session_logout"),
    Route("/user/delete", delete_user, methods=["DELETE"], name="session_delete_user"),
]
PATHS = frozenset(route.path for route in routes)
