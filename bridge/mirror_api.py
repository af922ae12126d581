"""Routes of the smart-mirror API (seeds 000 and 001): accounts.

Each route reads the documented fields (form or JSON), relays them to a service over MQTT and
answers the documented shape. Field names, paths and reply ``type`` values are the contract.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.replies import HttpFail, call, fields_of, success
from schemas.auth import (
    AUTH_LOGIN,
    AUTH_REGISTER,
    AUTH_RESET,
    AUTH_RESET_CONFIRM,
    AUTH_VERIFY,
    AuthError,
)

ACCOUNT_BODY_LIMIT = 64 * 1024


async def login(request: Request) -> JSONResponse:
    fields = await fields_of(request, "login", ACCOUNT_BODY_LIMIT)
    reply = await call(request, "login", AUTH_LOGIN, fields)
    return success("login", token=reply.token)


async def register_user(request: Request) -> JSONResponse:
    fields = await fields_of(request, "register_user", ACCOUNT_BODY_LIMIT)
    await call(request, "register_user", AUTH_REGISTER, fields)
    return success("register_user")


async def reset_password(request: Request) -> JSONResponse:
    fields = await fields_of(request, "reset_password", ACCOUNT_BODY_LIMIT)
    reply = await call(request, "reset_password", AUTH_RESET, fields)
    return success("reset_password", message=reply.message)


async def reset_password_confirm(request: Request) -> JSONResponse:
    fields = await fields_of(request, "reset_password_confirm", ACCOUNT_BODY_LIMIT)
    await call(request, "reset_password_confirm", AUTH_RESET_CONFIRM, fields)
    return success("reset_password_confirm", message="Password changed")


async def whoami(request: Request) -> JSONResponse:
    """The user a bearer token belongs to; what a client checks before trusting a token."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HttpFail("whoami", "send Authorization: Bearer <token from /login>", 401)
    reply = await call(request, "whoami", AUTH_VERIFY, {"token": token.strip()},
                       domain_status={AuthError.TOKEN_INVALID: 401})
    return success("whoami", username=reply.username)


routes = [
    Route("/login", login, methods=["POST"]),
    Route("/register/user", register_user, methods=["POST"]),
    Route("/reset_password", reset_password, methods=["POST"]),
    Route("/reset_password/confirm", reset_password_confirm, methods=["POST"]),
    Route("/whoami", whoami, methods=["GET"]),
]
