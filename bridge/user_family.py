"""What every route of the user/file/message API (seed 003) shares: its reply shapes and its
token check.

Replies are ``{"message": ...}`` with the seed's status codes; token failures are
flask-jwt-extended's ``{"msg": ...}`` with its status codes (the table in docs/http-api.md),
since the seed's clients were written against a Flask app that used it. The header is parsed
here as flask-jwt-extended parses it; the token itself only by auth, whose error ``reason``
(:class:`schemas.auth.TokenReason`, from PyJWT's classification) picks the table's row.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

from bridge.forms import BadBody, read_fields
from bridge.replies import HttpFail, call, family_failure, retry_headers
from schemas.auth import AUTH_VERIFY, TOKEN_MAX, AuthError, TokenReason, VerifyReply
from schemas.topics import Operation

Rep = TypeVar("Rep", bound=BaseModel)

USER_BODY_LIMIT = 16 * 1024
# The family's paths, whose 404s, 405s and 500s answer in its shape too (bridge/app.py).
PATHS = frozenset({"/api/register", "/api/login", "/api/user", "/api/upload", "/api/download",
                   "/api/message"})

EXPECTED = "Expected 'Authorization: Bearer <JWT>'"
NO_HEADER = "Missing Authorization Header"
NO_BEARER = f"Missing 'Bearer' type in 'Authorization' header. {EXPECTED}"
BAD_HEADER = f"Bad Authorization header. {EXPECTED}"
TOO_LONG = "Token is too long"
# flask-jwt-extended's words for the token failures that are not PyJWT's own text.
_TOKEN_ROWS: dict[str, tuple[int, str]] = {
    TokenReason.EXPIRED: (401, "Token has expired"),
    TokenReason.REVOKED: (401, "Token has been revoked"),
    TokenReason.SIGNATURE: (422, "Signature verification failed"),
}
_FIELD_SEPARATOR = re.compile(r",\s*")


class UserFail(Exception):
    """Answer ``body`` with ``status``: ``{"message": ...}``, or ``{"msg": ...}`` for a token
    failure. ``code`` is the service's error code when a service answered; ``retry_after``
    becomes ``Retry-After`` (throttled)."""

    def __init__(self, status: int, body: dict[str, Any], code: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.code = code
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status,
                            headers=retry_headers(self.retry_after))


def answer(status: int, message: Any) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def fail(status: int, message: str, code: str | None = None,
         retry_after: int | None = None) -> UserFail:
    return UserFail(status, {"message": message}, code, retry_after)


def token_fail(status: int, msg: str) -> UserFail:
    return UserFail(status, {"msg": msg}, AuthError.TOKEN_INVALID)


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
    their status and message; a token auth refuses gets its row of the token table; other
    failures keep the common status (400, 429, 503, 504, ...) and message (a code nobody
    mapped, 200 in seed 000's table, is a 500 here)."""
    try:
        return await call(request, "user_api", operation, body, **options)
    except HttpFail as exc:
        mapped = (domain or {}).get(exc.code or "")
        if mapped is None and exc.code == AuthError.TOKEN_INVALID:
            status, msg = _TOKEN_ROWS.get(exc.reason or "", (422, exc.message))
            raise token_fail(status, msg) from exc
        raise fail(*family_failure(exc, domain), exc.code, exc.retry_after) from exc


def bearer(request: Request) -> str:
    """The JWT of ``Authorization: Bearer <JWT>``, parsed as flask-jwt-extended parses it: the
    header may list several comma-separated credentials, of which exactly one is ``Bearer``."""
    header = request.headers.get("authorization", "").strip()
    if not header:
        raise token_fail(401, NO_HEADER)
    bearers = [value.split() for value in _FIELD_SEPARATOR.split(header)
               if value.split()[:1] == ["Bearer"]]
    if len(bearers) != 1:
        raise token_fail(401, NO_BEARER)
    if len(bearers[0]) != 2:
        raise token_fail(422, BAD_HEADER)
    token = bearers[0][1]
    if len(token) > TOKEN_MAX:
        raise token_fail(422, TOO_LONG)
    return token


async def token_user(request: Request) -> VerifyReply:
    """The user whose token the request carries, checked by auth; the token-error table of
    docs/http-api.md otherwise."""
    return await ask(request, AUTH_VERIFY, {"token": bearer(request)})
