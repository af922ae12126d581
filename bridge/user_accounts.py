"""Routes of the user API's accounts (seed 003): register, log in, and the token holder's own
record (``/api/user``: read, change, delete).

Fields come as a form or JSON (query fields too). Replies are ``{"message": ...}`` with the
seed's status codes and words, misspellings included; token failures are the family's table
(bridge/user_family.py). docs/http-api.md lists what the seed leaves open and how it is decided.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.replies import client_address
from bridge.user_family import answer, ask, bearer, fail, fields, token_user
from bridge.user_files import NOT_FOUND as FILE_NOT_FOUND
from bridge.user_files import has_file
from schemas.auth import (
    AUTH_DELETE_USER,
    AUTH_LOGIN,
    AUTH_REGISTER,
    AUTH_UPDATE_USER,
    AUTH_USER,
    AuthError,
    ProfileKey,
    UserRecord,
)
from schemas.envelope import ErrorCode

CREATED = "user created successfully"
IN_USE = "user already in use"
DATABASE_PROBLEM = "Internal server error mybe database problem"
LOGGED_IN = "login succeeded"
BAD_LOGIN = "bad username or password"
MODIFIED = "user info modyfied successfully"
NOT_EXISTS = "user dose not exists"
DELETED = "deleted successfully"
# What a record shows for ``password``: the key stays for clients that read it, the value never
# says anything about the password.
PASSWORD_SHOWN = "********"

REGISTER_REQUIRED = ("username", "password", "first_name", "last_name")
CHANGEABLE = ("username", "password", "first_name", "last_name", "profile")
NOTHING_TO_CHANGE = f"send at least one of {', '.join(CHANGEABLE)}"

_SERVICE_FAILED: dict[str, tuple[int, str]] = {ErrorCode.INTERNAL: (500, DATABASE_PROBLEM)}


def _required(given: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if given.get(name) is None:
            raise fail(400, f"{name}: is required")


def _id(value: object) -> int | None:
    """The ``id`` field: a whole number, as JSON or as text (query and forms); absent or
    empty is the token's own account."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdecimal() and value.strip().isascii():
        return int(value.strip())
    raise fail(400, "id: must be a whole number")


def _shown(record: UserRecord) -> dict[str, Any]:
    return {"ID": record.id, "first_name": record.first_name, "last_name": record.last_name,
            "password": PASSWORD_SHOWN, "profile": record.profile, "username": record.username}


_PROFILE_KEY: TypeAdapter[str] = TypeAdapter(ProfileKey)


async def _check_profile(request: Request, owner: object, profile: object) -> None:
    """A ``profile`` names a file of type ``profile`` that ``owner`` uploaded: 404
    :data:`~bridge.user_files.NOT_FOUND` otherwise (at registration there is none yet, as the
    seed says: register, upload, then set it)."""
    try:
        _PROFILE_KEY.validate_python(profile, strict=True)
    except ValidationError:
        return  # not a profile key at all: the request's validation answers 400 naming it
    if not isinstance(owner, str) or not isinstance(profile, str):
        return
    if not await has_file(request, owner, "profile", profile):
        raise fail(404, FILE_NOT_FOUND)


async def register(request: Request) -> JSONResponse:
    given = await fields(request)
    _required(given, REGISTER_REQUIRED)
    body = {name: given.get(name) for name in (*REGISTER_REQUIRED, "profile")}
    if body["profile"] is not None:
        await _check_profile(request, given["username"], body["profile"])
    await ask(request, AUTH_REGISTER, body,
              {AuthError.USER_EXISTS: (409, IN_USE), **_SERVICE_FAILED})
    return answer(201, CREATED)


async def login(request: Request) -> JSONResponse:
    given = await fields(request)
    _required(given, ("username", "password"))
    reply = await ask(request, AUTH_LOGIN, {
        "username": given["username"], "password": given["password"],
        "address": client_address(request),
    }, {AuthError.LOGIN_FAILED: (403, BAD_LOGIN), **_SERVICE_FAILED})
    return JSONResponse({"access_token": reply.token, "message": LOGGED_IN}, status_code=202)


async def user(request: Request) -> JSONResponse:
    """``/api/user``: the token is checked first (as flask-jwt-extended does, before the
    view), then the fields."""
    token = bearer(request)
    if request.method == "DELETE":
        await ask(request, AUTH_DELETE_USER, {"token": token},
                  {AuthError.USER_NOT_FOUND: (402, NOT_EXISTS), **_SERVICE_FAILED})
        return answer(200, DELETED)
    given = await fields(request)
    if request.method == "PUT":
        changes = {name: given[name] for name in CHANGEABLE if given.get(name) is not None}
        if not changes:
            raise fail(400, NOTHING_TO_CHANGE)
        if "profile" in changes:
            await _check_profile(request, (await token_user(request)).username, changes["profile"])
        await ask(request, AUTH_UPDATE_USER, {"token": token, **changes}, {
            AuthError.USER_NOT_FOUND: (404, NOT_EXISTS), AuthError.USER_EXISTS: (409, IN_USE),
            **_SERVICE_FAILED})
        return answer(201, MODIFIED)
    record = await ask(request, AUTH_USER, {"token": token, "id": _id(given.get("id"))},
                       {AuthError.USER_NOT_FOUND: (404, NOT_EXISTS), **_SERVICE_FAILED})
    return answer(200, [_shown(record)])


routes = [
    Route("/api/register", register, methods=["POST"], name="user_register"),
    Route("/api/login", login, methods=["POST"], name="user_login"),
    Route("/api/user", user, methods=["GET", "PUT", "DELETE"], name="user_record"),
]
