"""Routes of the smart-mirror API (seeds 000 and 001): accounts.

Each route reads the documented fields (form or JSON), relays them to a service over MQTT and
answers the documented shape. Field names, paths and reply ``type`` values are the contract.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.replies import HttpFail, call, relay, success
from schemas.auth import (
    AUTH_LOGIN,
    AUTH_REGISTER,
    AUTH_RESET,
    AUTH_RESET_CONFIRM,
    AUTH_VERIFY,
    AuthError,
)

ACCOUNT_BODY_LIMIT = 64 * 1024


async def whoami(request: Request) -> JSONResponse:
    """The user a bearer token belongs to; what a client checks before trusting a token."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HttpFail("whoami", "send Authorization: Bearer <token from /login>", 401)
    reply = await call(
        request,
        "whoami",
        AUTH_VERIFY,
        {"token": token.strip()},
        domain_status={AuthError.TOKEN_INVALID: 401},
    )
    return success("whoami", username=reply.username)


routes = [
    Route(
        "/login",
        relay("login", AUTH_LOGIN, ACCOUNT_BODY_LIMIT, lambda r: {"token": r.token}),
        methods=["POST"],
    ),
    Route(
        "/register/user",
        relay("register_user", AUTH_REGISTER, ACCOUNT_BODY_LIMIT, lambda r: {}),
        methods=["POST"],
    ),
    Route(
        "/reset_password",
        relay("reset_password", AUTH_RESET, ACCOUNT_BODY_LIMIT, lambda r: {"message": r.message}),
        methods=["POST"],
    ),
    Route(
        "/reset_password/confirm",
        relay(
            "reset_password_confirm",
            AUTH_RESET_CONFIRM,
            ACCOUNT_BODY_LIMIT,
            lambda r: {"message": "Password changed"},
        ),
        methods=["POST"],
    ),
    Route("/whoami", whoami, methods=["GET"]),
]
