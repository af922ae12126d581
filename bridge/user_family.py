"""What every route of the user/file/message API (seed 003) shares: its reply shapes and its
token check.

Replies are ``{"message": ...}`` with the seed's status codes; token failures are
flask-jwt-extended's ``{"msg": ...}`` with its status codes (the table in docs/http-api.md),
since the seed's clients were written against a Flask app that used it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

from bridge.forms import BadBody, read_fields
from bridge.replies import HttpFail, call
from schemas.auth import AUTH_VERIFY, TOKEN_MAX, AuthError, VerifyReply
from schemas.topics import Operation

Rep = TypeVar("Rep", bound=BaseModel)

USER_BODY_LIMIT = 16 * 1024

EXPECTED = "Expected 'Authorization: Bearer <JWT>'"
NO_HEADER = "Missing Authorization Header"
NO_BEARER = f"Missing 'Bearer' type in 'Authorization' header. {EXPECTED}"
BAD_HEADER = f"Bad Authorization header. {EXPECTED}"


class UserFail(Exception):
    """Answer ``body`` with ``status``: ``{"message": ...}``, or ``{"msg": ...}`` for a token
    failure. ``code`` is the service's error code when a service answered."""

    def __init__(self, status: int, body: dict[str, Any], code: str | None = None) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.code = code

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status)


def answer(status: int, message: Any) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def fail(status: int, message: str, code: str | None = None) -> UserFail:
    return UserFail(status, {"message": message}, code)


def token_fail(status: int, msg: str) -> UserFail:
    return UserFail(status, {"msg": msg})


async def fields(request: Request, limit: int = USER_BODY_LIMIT) -> dict[str, Any]:
    """The request's fields (form, multipart or JSON; query too), in this family's shape."""
    try:
        return await read_fields(request, limit)
    except BadBody as exc:
        raise fail(exc.status, exc.message) from exc


async def ask(
    request: Request,
    operation: Operation[Any, Rep],
    body: dict[str, Any],
    domain: dict[str, tuple[int, str]] | None = None,
    **options: Any,
) -> Rep:
    """:func:`bridge.replies.call` in this family's shape: the service codes in ``domain`` get
    their status and message; other failures keep the common status (400, 503, 504, ...) and
    message (a code nobody mapped, 200 in seed 000's table, is a 500 here)."""
    try:
        return await call(request, "user_api", operation, body, **options)
    except HttpFail as exc:
        status, message = (domain or {}).get(exc.code or "", (exc.status, exc.message))
        raise fail(status if status >= 400 else 500, message, exc.code) from exc


def bearer(request: Request) -> str:
    """The JWT of ``Authorization: Bearer <JWT>``, parsed as flask-jwt-extended parses it."""
    header = request.headers.get("authorization")
    if header is None:
        raise token_fail(401, NO_HEADER)
    parts = header.split()
    if not parts or parts[0] != "Bearer":
        raise token_fail(401, NO_BEARER)
    if len(parts) != 2:
        raise token_fail(422, BAD_HEADER)
    token = parts[1]
    if len(token) > TOKEN_MAX:
        raise token_fail(422, "Token is too long")
    return token


async def token_user(request: Request) -> VerifyReply:
    """The user whose token the request carries, checked by auth; the token-error table of
    docs/http-api.md otherwise."""
    token = bearer(request)
    try:
        return await call(request, "user_api", AUTH_VERIFY, {"token": token},
                          domain_status={AuthError.TOKEN_INVALID: 422})
    except HttpFail as exc:
        if exc.code == AuthError.TOKEN_INVALID:
            raise token_fail(422, exc.message) from exc
        raise fail(exc.status if exc.status >= 400 else 500, exc.message, exc.code) from exc
